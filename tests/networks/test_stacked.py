"""The batched probe: K fine-tunes stacked into one model give what each gives alone."""
from __future__ import annotations

import copy
import dataclasses
import threading

import numpy as np
import pytest
import torch
from torch import nn

from dse.accuracy import ProbeCandidate, probe_cache, probe_estimator
from dse.accuracy.defaults import ProbeConfig
from dse.accuracy.probe_estimator import ProbeEstimator, ProbeSetup, probe, probe_many
from hw_models.error_models import ErrorModelParams
from networks import finetune
from networks.datasets import load_dataset
from networks.diana_model import to_diana
from networks.finetune import (
    FineTuneConfig,
    FineTuneSetup,
    Stopped,
    fine_tuned_correctness,
    fine_tuned_correctness_many,
    in_threads,
)
from networks.stacked import StackedModel, stackable
from networks.train import TrainConfig, train_baseline

N_LAYERS = 10  # resnet8
COUT = (16, 16, 16, 32, 32, 32, 64, 64, 64, 10)


@pytest.fixture(scope="module")
def checkpoint():
    return train_baseline("resnet8", load_dataset("digits"), TrainConfig(epochs=1),
                          device="cpu")


def setup(checkpoint, **config) -> FineTuneSetup:
    settings = dict(steps=4, batch_size=32, lr=3e-4, ramp_fraction=0.5, finetune_seeds=2,
                    error_seeds=2, error_model=0, split="val", seed=3)
    return FineTuneSetup(checkpoint, load_dataset("digits"),
                         FineTuneConfig(**{**settings, **config}), ErrorModelParams(), 2048)


def candidates() -> list[ProbeCandidate]:
    """The all-digital baseline, a mixed split under errors on every stored tensor
    (shortcuts included), named analog channels, and a heavy BER on the weights."""
    rng = np.random.default_rng(0)
    mixed = tuple(int(rng.integers(0, c + 1)) for c in COUT)
    named = tuple(tuple(range(0, c, 2)) for c in COUT)
    return [
        ProbeCandidate((0,) * N_LAYERS, (0.0,) * N_LAYERS, (0.0,) * N_LAYERS),
        ProbeCandidate(mixed, (1e-3,) * N_LAYERS, (2e-3,) * N_LAYERS,
                       shortcut_ber=(1e-3,) * N_LAYERS),
        ProbeCandidate(tuple(len(c) for c in named), (1e-4,) * N_LAYERS, (0.0,) * N_LAYERS,
                       analog_channels=named),
        ProbeCandidate(COUT, (1e-2,) * N_LAYERS, (1e-4,) * N_LAYERS),
    ]


@pytest.mark.parametrize("steps,batch", [
    (4, 3),
    pytest.param(0, 3, marks=pytest.mark.slow),
    pytest.param(0, 8, marks=pytest.mark.slow),
    pytest.param(4, 8, marks=pytest.mark.slow),
])
def test_batched_equals_one_at_a_time(checkpoint, steps, batch):
    """Bit for bit: the same correctness arrays, whether the 8 fine-tunes (4 candidates x 2
    seeds) run 3 at a time (chunks split candidates' seeds) or all together."""
    fixed = setup(checkpoint, steps=steps)
    alone = [fine_tuned_correctness(c, fixed) for c in candidates()]
    together = fine_tuned_correctness_many(candidates(), fixed, batch=batch)
    assert len(together) == len(alone)
    for single, batched in zip(alone, together):
        assert batched.shape == single.shape == (2, 2, len(fixed.bundle.split("val").labels))
        assert np.array_equal(batched, single)


@pytest.mark.parametrize("workers", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_results_do_not_depend_on_workers_or_threads(checkpoint, workers, monkeypatch):
    """Each replica runs its operations on one thread, whichever worker thread holds it and
    however many threads torch has: the same arrays with 1 or 3 workers, and alone with
    torch on 1 or 2 threads."""
    fixed = setup(checkpoint, steps=2, finetune_seeds=2, error_seeds=1)
    few = candidates()[:3]
    threads_seen = []
    for name in ("_fine_tune", "_fine_tune_stacked"):
        real = getattr(finetune, name)

        def recording(*args, real=real, **kwargs):
            threads_seen.append(torch.get_num_threads())
            return real(*args, **kwargs)
        monkeypatch.setattr(finetune, name, recording)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = [fine_tuned_correctness(c, fixed) for c in few]
        torch.set_num_threads(2)
        assert all(np.array_equal(a, fine_tuned_correctness(c, fixed))
                   for a, c in zip(alone, few))
        together = fine_tuned_correctness_many(few, fixed, batch=5, workers=workers)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))
    assert threads_seen and set(threads_seen) == {1}


def test_by_default_a_thread_takes_four_replicas_and_a_lone_one_is_a_plain_model(
        checkpoint, monkeypatch):
    """Two threads of one or two replicas each are slower than one stack (the interpreter
    is shared): the default spreads a batch only from four replicas per thread on, and a
    single replica is fine-tuned as the plain model."""
    fixed = setup(checkpoint, steps=1, finetune_seeds=2, error_seeds=1)
    spreads, stacked = [], []
    real_threads, real_stacked = finetune.in_threads, finetune._fine_tune_stacked

    def counting(work, count):
        spreads.append(count)
        return real_threads(work, count)

    def recording(model, *args, **kwargs):
        stacked.append(model.replicas)
        return real_stacked(model, *args, **kwargs)
    monkeypatch.setattr(finetune, "in_threads", counting)
    monkeypatch.setattr(finetune, "_fine_tune_stacked", recording)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        fine_tuned_correctness_many(candidates()[:2], fixed, batch=4)    # 4 replicas
        fine_tuned_correctness_many(candidates(), fixed, batch=8)        # 8 replicas
        fine_tuned_correctness_many(candidates()[:1],
                                    setup(checkpoint, steps=1, finetune_seeds=1,
                                          error_seeds=1), batch=8)     # 1 replica
    finally:
        torch.set_num_threads(before)
    assert spreads[:2] == [1, 2] and stacked == [4, 4, 4]


def test_a_failing_worker_stops_the_others_and_its_error_is_raised():
    """One worker raises: the others stop at their next step, the first real error is
    raised, not the others' ``Stopped``."""
    started = threading.Barrier(3)
    steps: list[int] = []

    def work(index: int, stop: threading.Event) -> int:
        started.wait(timeout=10)
        if index == 2:
            raise RuntimeError("worker 2 failed")
        for step in range(1000):
            if stop.wait(timeout=0.01):
                steps.append(step)
                raise Stopped
        return index
    with pytest.raises(RuntimeError, match="worker 2 failed"):
        in_threads(work, 3)
    assert len(steps) == 2 and max(steps) < 1000
    assert in_threads(lambda index, stop: index * 10, 3) == [0, 10, 20]


def test_an_interrupted_caller_stops_its_workers():
    """A signal's exception in the calling thread (its own replica's step) stops the
    workers on other threads before it is raised: none is left running."""
    finished = threading.Event()
    stopped = threading.Event()

    def work(index: int, stop: threading.Event) -> None:
        if index == 0:
            raise KeyboardInterrupt
        if stop.wait(timeout=30):
            stopped.set()
            raise Stopped
        finished.set()
    with pytest.raises(KeyboardInterrupt):
        in_threads(work, 2)
    assert stopped.is_set() and not finished.is_set()


def test_a_signal_in_a_batch_on_threads_leaves_no_fine_tune_running(checkpoint):
    """A signal's exception in the calling thread's replicas (here from its progress, as
    the guard raises it) stops the other thread's stack at its next step: the call raises
    it and no worker thread is left."""
    fixed = setup(checkpoint, steps=50, finetune_seeds=1, error_seeds=1)
    before = threading.active_count()

    def told(done, total, status):
        if done >= 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fine_tuned_correctness_many(candidates(), fixed, told, batch=4, workers=2)
    assert threading.active_count() == before


def test_batched_reports_progress_and_checks_batch(checkpoint):
    told = []
    fixed = setup(checkpoint, steps=2, finetune_seeds=1, error_seeds=1)
    fine_tuned_correctness_many(candidates()[:3], fixed, batch=2,
                                on_step=lambda done, total, status: told.append((done, total)))
    assert told[-1] == (6, 6) and all(total == 6 for _, total in told)
    assert [done for done, _ in told] == sorted(done for done, _ in told)
    with pytest.raises(ValueError, match="batch"):
        fine_tuned_correctness_many(candidates(), fixed, batch=0)


def test_stacked_parameters_follow_the_replicas(checkpoint):
    """Each replica's parameters are its model's, frozen where its model's are (a
    BN-folded bias), and the optimisers see each clip and scale once."""
    models = [checkpoint.build() for _ in range(3)]
    models[1].set_split(COUT)
    stacked = StackedModel(models)
    layer = stacked.layers()[1]
    single = models[1].layers()[1]
    assert torch.equal(layer.weight[1], single.layer.weight)
    assert torch.equal(layer.analog[1], single.analog) and not layer.analog[0].any()
    assert layer.bias is not None and not layer.bias.requires_grad
    weights, quantizers = stacked.split_parameters()
    assert len({id(p) for p in quantizers}) == len(quantizers)
    assert not {id(p) for p in weights} & {id(p) for p in quantizers}
    shared = [layer.input_quantizer for layer in stacked.layers()]
    assert len({id(q) for q in shared}) < len(shared)  # conv1 and the shortcut conv share


def test_unfolded_batchnorm_is_probed_one_at_a_time(checkpoint):
    """A BatchNorm that fx could not fold keeps parameters no replica axis holds: such a
    network is not stacked (the batched probe then runs its candidates one at a time)."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Flatten(),
                        nn.Linear(144, 10))
    model = to_diana(net, ["0", "4"])
    assert not stackable(model)
    with pytest.raises(ValueError, match="cannot be stacked"):
        StackedModel([model, copy.deepcopy(model)])
    assert stackable(checkpoint.build())


def probe_setup_for(checkpoint, tmp_path, **config) -> ProbeSetup:
    return ProbeSetup(checkpoint=checkpoint, bundle=load_dataset("digits"),
                      config=ProbeConfig(**{"steps": 2, "finetune_seeds": 2, "error_seeds": 2,
                                            **config}),
                      error_params=ErrorModelParams(), row_bytes=2048, cache_dir=tmp_path,
                      batch=3)


def test_probe_many_caches_each_candidate_once(checkpoint, tmp_path, monkeypatch):
    """probe_many gives probe's results; a candidate given twice, or cached, is not
    fine-tuned again."""
    probe_cache.clear_memory_cache()
    fixed = probe_setup_for(checkpoint, tmp_path)
    first, second = candidates()[:2]
    alone = probe(first, setup=fixed)
    probe_cache.clear_memory_cache()  # the disk cache still holds it
    measured = []
    real = probe_estimator.fine_tuned_correctness_many

    def counting(cands, *args, **kwargs):
        measured.extend(cands)
        return real(cands, *args, **kwargs)
    monkeypatch.setattr(probe_estimator, "fine_tuned_correctness_many", counting)
    results = probe_many([first, second, second], setup=fixed)
    assert measured == [second]
    assert results[0].accuracy_mean == alone.accuracy_mean
    assert results[1] == results[2]
    probe_cache.clear_memory_cache()
    assert probe(second, setup=fixed).accuracy_mean == results[1].accuracy_mean
    probe_cache.clear_memory_cache()


def test_default_batch_follows_free_memory(checkpoint, tmp_path, monkeypatch):
    fixed = dataclasses.replace(probe_setup_for(checkpoint, tmp_path), batch=None)
    monkeypatch.setattr(probe_estimator, "free_memory_bytes", lambda device: 10**12)
    assert probe_estimator.default_batch(fixed) == probe_estimator.MAX_DEFAULT_BATCH
    monkeypatch.setattr(probe_estimator, "free_memory_bytes", lambda device: 10**6)
    assert probe_estimator.default_batch(fixed) == 1
    estimator = ProbeEstimator(dataclasses.replace(fixed, batch=7))
    assert estimator.group_size() == 3  # 7 fine-tunes hold 3 candidates of 2 seeds
    assert estimator.characterising("val").group_size() == 7  # no fine-tune: one each


def test_checkpoint_records_the_threads_it_was_trained_with(checkpoint):
    """Weights depend on the order of parallel sums, so on the thread count: the
    checkpoint says which (``dse train`` prints it)."""
    assert checkpoint.train_config["threads"] == torch.get_num_threads()
    assert checkpoint.train_config["device"] == "cpu"


@pytest.mark.slow
@pytest.mark.parametrize("error_model", [1, 2, 3])
def test_batched_equals_one_at_a_time_under_every_error_model(checkpoint, error_model):
    """EDEN's correlated (bitline, wordline) and data-dependent models draw from the stored
    bytes and rows: the batched probe still draws what each candidate draws alone."""
    fixed = setup(checkpoint, steps=2, error_model=error_model, finetune_seeds=1)
    few = candidates()[1:]
    alone = [fine_tuned_correctness(c, fixed) for c in few]
    together = fine_tuned_correctness_many(few, fixed, batch=4)
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))
