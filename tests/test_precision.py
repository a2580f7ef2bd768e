"""Mixed precision and the device paths, on CPU: fp16 autocast with a gradient scaler
(trains like float32, its scale checkpointed and resumed, its overflow steps kept apart
from the faults that roll a run back), the bf16/fp16 options, channels-last batches, and
pinned memory requested for CUDA only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import vaekit
from tests.helpers import CriticKind, registered, tiny_config, train_tiny
from vaekit.builtin.accelerators import CPUAccelerator, CUDAAccelerator
from vaekit.data import ON_DEVICE_BYTES, DeviceBatches, gather_rows, placement
from vaekit.errors import UsageError, VaekitError
from vaekit.model import VAE, Objective
from vaekit.train import train

FP16 = {"fp16": True}


class Interrupt:
    """Kills training right after the first epoch's checkpoint."""

    @vaekit.hookimpl
    def vaekit_epoch_end(self, run, epoch, metrics):
        raise KeyboardInterrupt


class _Blowup(torch.autograd.Function):
    """The identity forward; an infinite gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * math.inf


class InfiniteGradients:
    """A kind with a finite loss whose gradients are infinite on every step from ``first``."""

    @vaekit.hookimpl
    def register_models(self, register):
        class Exploding(VAE):
            def __init__(self, config, components, first: int = 0):
                super().__init__(config, components)
                self.first, self.calls = first, 0

            def forward(self, x, y=None, beta=1.0, free_bits=0.0):
                objective = super().forward(x, y, beta, free_bits)
                self.calls += 1
                if self.training and self.calls >= self.first:
                    return Objective(_Blowup.apply(objective.loss), *objective[1:])
                return objective

        register("exploding", Exploding)


def test_fp16_with_a_gradient_scaler_trains_like_float32(tmp_path):
    fp32 = train_tiny(tmp_path / "a", epochs=2).history
    # a first scale the digits' gradients fit in: no step overflows
    fp16 = train_tiny(tmp_path / "b", epochs=2, accelerator_options={**FP16, "init_scale": 512})
    assert [row["overflow_steps"] for row in fp16.history] == [0, 0]
    for a, b in zip(fp32, fp16.history, strict=True):  # measured: 0.002% apart
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=0.01)
    assert "overflow_steps" not in fp32[0]  # no scaler, no such count


def test_overflow_steps_are_the_scalers_not_faults_that_roll_back(tmp_path):
    # the default first scale, 2^16, overflows float16 on the digits' gradients: the scaler
    # skips those steps and halves its scale; they do not count toward --max-skipped-steps
    result = train_tiny(tmp_path, epochs=2, accelerator_options=FP16, max_skipped_steps=2)
    first, second = result.history
    assert first["overflow_steps"] > 2 and second["overflow_steps"] == 0
    assert first["skipped_steps"] == second["skipped_steps"] == 0
    assert first["rollbacks"] == second["rollbacks"] == 0
    assert first["grad_scale"] == 2.0 ** (16 - first["overflow_steps"])
    assert result.run.load_checkpoint()["scaler"]["scale"] == first["grad_scale"]


def test_a_non_finite_loss_under_fp16_is_a_skipped_step(tmp_path):
    from tests.test_faults import train_with_nan_passes

    result = train_with_nan_passes(
        tmp_path, 3, 5, epochs=1, accelerator_options={**FP16, "init_scale": 512}
    )
    assert result.history[0]["skipped_steps"] == 3
    assert result.history[0]["overflow_steps"] == 0


def test_a_roll_back_restores_the_scale_with_the_weights(tmp_path):
    from tests.test_faults import train_with_nan_passes

    # epoch 2's first 10 passes (27..36) are NaN: more than 5 skipped, so it rolls back to
    # epoch 1 and its scale, 512; the retry meets 4 more (37..40), each halving the scale
    with pytest.warns(UserWarning, match="rolled back"):
        result = train_with_nan_passes(
            tmp_path,
            27,
            40,
            epochs=2,
            accelerator_options={**FP16, "init_scale": 512},
            max_skipped_steps=5,
        )
    second = result.history[1]
    assert second["rollbacks"] == 1 and second["skipped_steps"] == 4
    assert second["grad_scale"] == 512 / 2**4  # not 512 / 2**14: the scale came back too


def test_fp16_trains_every_parameter_group(tmp_path):
    with registered(CriticKind(through=True), "critic-kind"):
        fp32 = train_tiny(tmp_path / "a", epochs=1, kind="with-critic")
        fp16 = train_tiny(
            tmp_path / "b",
            epochs=1,
            kind="with-critic",
            accelerator_options={**FP16, "init_scale": 512},
        )
    assert fp16.history[0]["overflow_steps"] == 0
    assert fp16.history[0]["val_loss"] == pytest.approx(fp32.history[0]["val_loss"], rel=0.01)
    a, b = fp32.model.critic.weight.detach(), fp16.model.critic.weight.detach()
    assert float((a - b).norm() / a.norm()) < 0.01  # the critic's optimiser stepped alike


def test_gradients_that_overflow_at_a_scale_below_one_are_faults(tmp_path):
    # from step 3 every gradient is infinite: the scaler halves its scale 17 times to below
    # 1, after which each overflow counts as a skipped step, the run rolls back (its scale
    # restored with the weights) and finally stops
    with registered(InfiniteGradients(), "inf-grad"):
        with pytest.warns(UserWarning, match="rolled back"):
            with pytest.raises(VaekitError, match="lower --lr"):
                train_tiny(
                    tmp_path,
                    epochs=2,
                    kind="exploding",
                    kind_options={"first": 3},
                    accelerator_options=FP16,
                    max_skipped_steps=4,
                    max_rollbacks=1,
                )


def test_an_interrupted_fp16_run_resumes_with_its_scale(tmp_path):
    straight = train_tiny(tmp_path / "a", epochs=2, accelerator_options=FP16).history
    with registered(Interrupt(), "interrupt"), pytest.raises(KeyboardInterrupt):
        train_tiny(tmp_path / "b", epochs=2, accelerator_options=FP16)
    resumed = train(tiny_config(tmp_path / "b", epochs=2), resume=True).history
    # a fresh scaler would start again at 2^16 and overflow again in epoch 2
    assert resumed[1]["overflow_steps"] == 0
    assert resumed[1]["grad_scale"] == straight[1]["grad_scale"] < 2.0**16
    assert resumed[1]["loss"] == pytest.approx(straight[1]["loss"], rel=1e-6)


def test_bf16_and_fp16_exclude_each_other():
    with pytest.raises(UsageError, match="pick one"):
        CPUAccelerator(bf16=True, fp16=True)
    assert CPUAccelerator(bf16=True).grad_scaler() is None
    assert CPUAccelerator().grad_scaler() is None
    assert CPUAccelerator(fp16=True, init_scale=8).grad_scaler().get_scale() == 8.0


def test_pinned_memory_and_device_residence_are_for_cuda_only():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert placement(cpu, 10 * ON_DEVICE_BYTES) == "host"
    assert placement(cuda, ON_DEVICE_BYTES - 1) == "device"
    assert placement(cuda, ON_DEVICE_BYTES) == "pinned"
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 4, 4), dtype=np.uint8)
    batches = DeviceBatches(images, cpu)
    assert batches.placement == "host" and not batches.images.is_pinned()
    assert batches.images.data_ptr() == images.ctypes.data  # shared with numpy, no copy


def test_gathering_rows_by_index_or_slice():
    images = torch.arange(5 * 2 * 3 * 3, dtype=torch.uint8).reshape(5, 2, 3, 3)
    idx = torch.tensor([4, 0, 2])
    assert torch.equal(gather_rows(images, idx), images[idx])
    assert torch.equal(gather_rows(images, slice(1, 4)), images[1:4])
    if torch.cuda.is_available():  # the pinned staging buffer needs a CUDA build
        for rows in (idx, slice(1, 4)):
            staged = gather_rows(images, rows, pin=True)
            assert staged.is_pinned() and torch.equal(staged, images[rows])


def test_batches_come_in_the_accelerators_memory_format():
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 4, 4), dtype=np.uint8)
    last = CPUAccelerator(channels_last=True).memory_format
    assert last == torch.channels_last
    assert CPUAccelerator().memory_format == torch.contiguous_format
    plain = list(DeviceBatches(images, torch.device("cpu")).epoch(4, seed=1))
    batches = list(DeviceBatches(images, torch.device("cpu"), memory_format=last).epoch(4, seed=1))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    for (x, _), (p, _) in zip(batches, plain, strict=True):
        assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        assert p.is_contiguous() and x.dtype == torch.float32
        assert torch.equal(x, p)  # the same values, only the layout differs


def test_channels_last_weights_and_inputs_train_like_contiguous(tmp_path):
    conv = {"encoder": "conv", "encoder_options": {"width": 8}, "decoder_options": {"width": 8}}
    plain = train_tiny(tmp_path / "a", epochs=1, **conv).history[0]
    last = train_tiny(
        tmp_path / "b", epochs=1, accelerator_options={"channels_last": True}, **conv
    ).history[0]
    assert last["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-3)


def test_the_cuda_accelerators_precision_and_layout_choices():
    if not torch.cuda.is_available():  # bf16 by default only where a GPU has it natively
        assert CUDAAccelerator().dtype is None
    assert CUDAAccelerator(bf16=True).dtype == torch.bfloat16
    fp16 = CUDAAccelerator(fp16=True)
    assert fp16.dtype == torch.float16 and fp16.memory_format == torch.channels_last
    assert CUDAAccelerator(channels_last=False).memory_format == torch.contiguous_format
    with pytest.raises(UsageError, match="pick one"):
        CUDAAccelerator(bf16=True, fp16=True)


def test_a_disabled_gradient_scaler_is_no_scaler():
    from vaekit.train import grad_scaler

    class Disabled:
        def grad_scaler(self):
            return torch.amp.GradScaler("cpu", enabled=False)

    assert grad_scaler(Disabled()) is None
    assert grad_scaler(CPUAccelerator()) is None  # no fp16, no scaler
    assert grad_scaler(object()) is None  # a plugin's accelerator without the member
    assert grad_scaler(CPUAccelerator(fp16=True)) is not None


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@CUDA
@pytest.mark.parametrize("options", [{}, FP16, {"bf16": True}, {"channels_last": False}])
def test_cuda_training_stays_close_to_float32(tmp_path, options):
    # never run yet: no GPU was at hand when it was written
    conv = {"encoder": "conv", "encoder_options": {"width": 8}, "decoder_options": {"width": 8}}
    exact = {"bf16": False, "channels_last": False}
    fp32 = train_tiny(
        tmp_path / "a", epochs=2, accelerator="cuda", accelerator_options=exact, **conv
    )
    other = train_tiny(
        tmp_path / "b", epochs=2, accelerator="cuda", accelerator_options=options, **conv
    )
    assert other.history[-1]["val_loss"] == pytest.approx(fp32.history[-1]["val_loss"], rel=0.05)


@CUDA
def test_cuda_batches_staged_in_pinned_memory_match_device_resident_ones(monkeypatch):
    # never run yet: no GPU was at hand when it was written
    import vaekit.data

    images = np.random.default_rng(0).integers(0, 256, (10, 3, 4, 4), dtype=np.uint8)
    cuda = torch.device("cuda", 0)
    resident = DeviceBatches(images, cuda, memory_format=torch.channels_last)
    monkeypatch.setattr(vaekit.data, "ON_DEVICE_BYTES", 0)
    staged = DeviceBatches(images, cuda, memory_format=torch.channels_last)
    assert resident.placement == "device" and staged.placement == "pinned"
    for (a, _), (b, _) in zip(resident.epoch(4, seed=3), staged.epoch(4, seed=3), strict=True):
        assert b.device == cuda and b.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(a, b)


class LayoutAndScalerAccelerator:
    """A third party's CPU accelerator (not built on vaekit's): fp16 autocast, its own
    gradient scaler starting at 64, and channels-last batches; it records the strides of
    the batches the model is given."""

    seen_strides: list[int] = []

    @vaekit.hookimpl
    def register_accelerators(self, register):
        class Mine:
            device = torch.device("cpu")
            memory_format = torch.channels_last

            @staticmethod
            def is_available():
                return True

            def prepare(self, model):
                def record(module, args):
                    LayoutAndScalerAccelerator.seen_strides.append(args[0].stride(1))

                model.register_forward_pre_hook(record)
                return model

            def autocast(self):
                return torch.autocast("cpu", dtype=torch.float16)

            def grad_scaler(self):
                return torch.amp.GradScaler("cpu", init_scale=64.0)

            def synchronize(self):
                pass

        register("mine", Mine)


def test_a_plugin_accelerator_s_layout_and_gradient_scaler_are_used(tmp_path):
    LayoutAndScalerAccelerator.seen_strides.clear()
    with registered(LayoutAndScalerAccelerator(), "mine-accel"):
        result = train_tiny(tmp_path, epochs=1, accelerator="mine")
    row = result.history[0]
    assert row["grad_scale"] == 64.0 and row["overflow_steps"] == 0  # its scaler, its scale
    # (B, 1, 8, 8): channel stride 1 only in channels-last (contiguous would be 64)
    assert LayoutAndScalerAccelerator.seen_strides
    assert set(LayoutAndScalerAccelerator.seen_strides) == {1}
    assert math.isfinite(row["val_loss"])
