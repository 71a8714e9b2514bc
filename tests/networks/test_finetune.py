"""Baseline training, checkpoints and the accuracy probe (tiny and CPU-only)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dse.accuracy import ProbeCandidate, probe_cache
from dse.accuracy.defaults import ProbeConfig
from dse.accuracy.probe_estimator import ProbeSetup, fine_tune_setup, probe, probe_key
from hw_models import ConfigError
from hw_models.error_models import ErrorModelParams
from networks import finetune as probe_module
from networks import get_dataset_spec
from networks.datasets import load_dataset
from networks.finetune import fine_tuned_correctness
from networks.train import TrainConfig, load_checkpoint, save_checkpoint, train_baseline

N_LAYERS = 10  # resnet8


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """resnet8 on digits, trained briefly (a few seconds), saved and reloaded."""
    bundle = load_dataset("digits")
    checkpoint = train_baseline("resnet8", bundle, TrainConfig(epochs=8), device="cpu")
    path = tmp_path_factory.mktemp("ckpt") / "resnet8-digits.pt"
    return save_checkpoint(checkpoint, path), path, bundle


def setup_for(trained, tmp_path=None, **config) -> ProbeSetup:
    checkpoint, _, bundle = trained
    return ProbeSetup(checkpoint=checkpoint, bundle=bundle,
                      config=ProbeConfig(**{"steps": 8, "finetune_seeds": 1,
                                            "error_seeds": 2, **config}),
                      error_params=ErrorModelParams(), row_bytes=2048, cache_dir=tmp_path)


def candidate(n_analog=(0,) * N_LAYERS, weight_ber=0.0, activation_ber=0.0) -> ProbeCandidate:
    return ProbeCandidate(tuple(n_analog), (weight_ber,) * N_LAYERS,
                          (activation_ber,) * N_LAYERS)


@pytest.fixture(autouse=True)
def fresh_memory_cache():
    probe_cache.clear_memory_cache()


@pytest.mark.slow
def test_checkpoint_records_config_and_accuracy(trained):
    checkpoint, path, _ = trained
    assert checkpoint.network == "resnet8" and checkpoint.num_classes == 10
    assert checkpoint.train_config["epochs"] == 8
    assert 0.8 < checkpoint.val_accuracy <= 1 and 0.8 < checkpoint.float_val_accuracy <= 1
    assert len(checkpoint.digest) == 16
    assert load_checkpoint(path).digest == checkpoint.digest


@pytest.mark.slow
def test_same_seed_same_accuracy(trained):
    first = probe(candidate(weight_ber=1e-3), setup=setup_for(trained))
    probe_cache.clear_memory_cache()
    second = probe(candidate(weight_ber=1e-3), setup=setup_for(trained))
    assert first.accuracy_per_seed == second.accuracy_per_seed
    assert not second.cached and 0 <= first.accuracy_mean <= 1


def test_the_fine_tune_alone_gives_the_same_correctness_for_the_same_seed(trained):
    """networks/ without the cache: (fine-tune seeds, error seeds, images) booleans, the same
    for the same seed; without steps and errors every seed gives the checkpoint's answer."""
    setup = fine_tune_setup(setup_for(trained, steps=2, finetune_seeds=2, error_seeds=2))
    noisy = candidate(weight_ber=3e-3)
    first = fine_tuned_correctness(noisy, setup)
    assert first.dtype == bool and first.shape == (2, 2, len(setup.bundle.split("val").labels))
    assert np.array_equal(first, fine_tuned_correctness(noisy, setup))
    still = dataclasses.replace(setup, config=dataclasses.replace(setup.config, steps=0))
    clean = fine_tuned_correctness(candidate(), still)
    assert clean.shape == first.shape and (clean == clean[0, 0]).all()


@pytest.mark.slow
def test_all_digital_not_worse_than_all_analog(trained):
    cout = (16, 16, 16, 32, 32, 32, 64, 64, 64, 10)
    digital = probe(candidate(), setup=setup_for(trained)).accuracy_mean
    analog = probe(candidate(n_analog=cout), setup=setup_for(trained)).accuracy_mean
    assert digital >= analog - 0.02
    assert digital > 0.9


@pytest.mark.slow
def test_high_ber_on_weights_hurts(trained):
    clean = probe(candidate(), setup=setup_for(trained)).accuracy_mean
    broken = probe(candidate(weight_ber=1e-2), setup=setup_for(trained))
    worse = probe(candidate(weight_ber=3e-2), setup=setup_for(trained))
    # EDEN's correction zeroes out-of-range codes, so 1e-2 costs points, not everything
    # (2.4-5.6 pp over runs of this test: the briefly trained checkpoint varies)
    assert broken.accuracy_mean < clean - 0.01
    # with ODiMO's quantisers: 0.90-0.94 at 1e-2, 0.85 at 3e-2 (was a drop of over 0.1)
    assert worse.accuracy_mean < broken.accuracy_mean - 0.03
    # two error seeds, two draws: other images wrong (their accuracies may still tie: on
    # some machines' checkpoints both were 0.9033)
    assert len(broken.accuracy_per_seed) == 2 and broken.correct is not None
    assert not np.array_equal(broken.correct[0, 0], broken.correct[0, 1])


@pytest.mark.slow
def test_cache_hit_skips_the_fine_tune(trained, tmp_path, monkeypatch):
    setup = setup_for(trained, tmp_path)
    first = probe(candidate(weight_ber=1e-4), setup=setup)
    assert not first.cached and list(tmp_path.glob("*.json"))

    def no_fine_tune(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(probe_module, "_fine_tune", no_fine_tune)
    from_memory = probe(candidate(weight_ber=1e-4), setup=setup)
    probe_cache.clear_memory_cache()
    from_disk = probe(candidate(weight_ber=1e-4), setup=setup)
    for hit in (from_memory, from_disk):
        assert hit.cached and hit.accuracy_per_seed == first.accuracy_per_seed
    other_settings = setup_for(trained, tmp_path, error_model=1)
    with pytest.raises(AssertionError, match="cache should have answered"):
        probe(candidate(weight_ber=1e-4), setup=other_settings)


def test_probe_rejects_bad_settings(trained):
    with pytest.raises(ConfigError, match="one entry per layer"):
        probe(ProbeCandidate((0,), (0.0,), (0.0,)), setup=setup_for(trained))
    bad = dataclasses.replace(setup_for(trained), config=ProbeConfig(steps=-1))
    with pytest.raises(ConfigError, match="steps must be >= 0"):
        probe(candidate(), setup=bad)


def test_checkpoint_mismatches_and_corruption(trained, tmp_path):
    _, path, _ = trained
    with pytest.raises(ConfigError, match="of network 'resnet8', not 'resnet20'"):
        load_checkpoint(path, network="resnet20")
    with pytest.raises(ConfigError, match="trained for 10 classes"):
        load_checkpoint(path, network="resnet8", spec=get_dataset_spec("synthetic"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="corrupt or not a dse checkpoint"):
        load_checkpoint(corrupt)
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rebuilt_model_matches_the_checkpoint(trained):
    checkpoint, _, bundle = trained
    model = checkpoint.build().eval()
    images, _ = next(bundle.batches("val", 32, shuffle=False))
    with torch.no_grad():
        assert torch.equal(model(images), checkpoint.build().eval()(images))


@pytest.mark.slow
def test_named_channels_are_part_of_the_key_and_of_the_result(trained):
    setup = setup_for(trained)
    counts = [0] * N_LAYERS
    counts[3] = 8
    by_rule = candidate(counts)
    named = dataclasses.replace(by_rule, analog_channels=(None,) * 3 + (tuple(range(8)),)
                                + (None,) * 6)
    assert probe_key(by_rule, setup) != probe_key(named, setup)
    assert probe(named, setup=setup).correct is not None
    with pytest.raises(ConfigError, match="name n_analog channels"):
        probe(dataclasses.replace(named, analog_channels=(None,) * 3 + ((0, 1),) + (None,) * 6),
              setup=setup)


def test_fine_tune_steps_are_reported_over_all_seeds(trained, tmp_path):
    """A long probe visibly moves: its steps counted over every fine-tune seed, then its
    evaluation; a cached answer reports nothing."""
    from dse.accuracy.probe_estimator import ProbeEstimator

    calls = []
    estimator = ProbeEstimator(setup_for(trained, tmp_path, steps=3, finetune_seeds=2),
                               on_step=lambda *call: calls.append(call))
    estimator(candidate(weight_ber=1e-4))
    assert [done for done, _, _ in calls] == [0, 1, 2, 3, 3, 4, 5, 6]
    assert {total for _, total, _ in calls} == {6}
    assert calls[1][2] == "seed 1/2, step 1/3"
    assert calls[-1][2] == "seed 2/2, evaluating under 2 error masks"
    calls.clear()
    assert estimator(candidate(weight_ber=1e-4)).cached and calls == []
    confirming = estimator.confirming(steps=2, finetune_seeds=1, split="val")
    assert confirming.on_step is estimator.on_step  # the confirmation's steps are told too
    assert estimator.reporting(None).on_step is None


def test_delivered_weights_are_kept_read_back_and_probed_from(trained, tmp_path):
    """An engine's trained weights: stored by their SHA-256 beside the probe cache, read
    back by any worker, and probed from in place of the checkpoint (own cache entries)."""
    from dse.accuracy.abilities import StartsFrom, delivered
    from dse.accuracy.probe_estimator import ProbeEstimator

    checkpoint, _, _ = trained
    estimator = ProbeEstimator(setup_for(trained, tmp_path / "probe_cache", steps=0))
    assert isinstance(estimator, StartsFrom)
    broken = {name: (torch.zeros_like(t) if name.endswith("fc.layer.weight") else t)
              for name, t in checkpoint.state_dict.items()}
    weights = checkpoint.derived(broken, trained_by={"engine": "test", "samples": 0})
    assert weights.tensors_sha256 != checkpoint.tensors_sha256
    record = estimator.keep_weights(weights)
    assert record["file"] == f"weights/{weights.tensors_sha256}.pt"
    assert (tmp_path / record["file"]).is_file()
    again = ProbeEstimator(setup_for(trained, tmp_path / "probe_cache", steps=0))
    assert again.weights_of(record).tensors_sha256 == weights.tensors_sha256
    from_weights = delivered(again, record)
    assert probe_key(candidate(), from_weights.setup) != probe_key(candidate(), again.setup)
    assert from_weights(candidate()).accuracy_mean < 0.5 < again(candidate()).accuracy_mean
    assert delivered(again, None) is again

    (tmp_path / record["file"]).unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        again.weights_of(record)
    with pytest.raises(ConfigError, match="cannot start from other weights"):
        delivered(lambda c: None, record)  # type: ignore[arg-type, return-value]
    grandchild = weights.derived(broken, trained_by={"engine": "test"})  # EDEN after ODiMO
    assert grandchild.train_config["lineage"] == [checkpoint.tensors_sha256,
                                                  weights.tensors_sha256]
    assert estimator.starting_from(grandchild).setup.checkpoint is grandchild
    stranger = dataclasses.replace(grandchild, train_config={"derived_from": "0" * 64})
    with pytest.raises(ConfigError, match="not trained from this study's checkpoint"):
        estimator.starting_from(stranger)


def test_the_quantisers_fine_tune_with_their_own_sgd(trained, monkeypatch):
    """ODiMO's q_params (clips and weight scales) take plain SGD at lr 1e-5 of their own
    (image_classification/cifar10/main_r20.py:308-325); the weights Adam."""
    from networks.quantize import QUANTIZER_LR, quantizer_parameters

    built = []
    original_build = probe_module.Checkpoint.build

    def build(self):
        built.append(original_build(self))
        return built[-1]
    monkeypatch.setattr(probe_module.Checkpoint, "build", build)
    optimizers: list[tuple[str, list, dict]] = []
    for name in ("SGD", "Adam"):
        original = getattr(torch.optim, name)

        def spy(params, original=original, name=name, **kwargs):
            params = list(params)
            optimizers.append((name, params, kwargs))
            return original(params, **kwargs)
        monkeypatch.setattr(torch.optim, name, spy)
    fine_tuned_correctness(candidate(), fine_tune_setup(setup_for(trained, steps=1,
                                                                  error_seeds=1)))
    (model,) = built
    quantizers = {id(p) for p in quantizer_parameters(model)}
    # 8 input clips (2 shared), 2 weight scales a layer, the 2 downsample adds' own clips
    assert len(quantizers) == 3 * N_LAYERS - 2 + 2
    by_name = {name: (params, kwargs) for name, params, kwargs in optimizers}
    sgd_params, sgd_kwargs = by_name["SGD"]
    assert {id(p) for p in sgd_params} == quantizers and sgd_kwargs == {"lr": QUANTIZER_LR}
    adam_params, _ = by_name["Adam"]
    assert not quantizers & {id(p) for p in adam_params}
    assert len(adam_params) + len(sgd_params) == len(list(model.parameters()))
