"""DeblurModel: BasicSR's SRModel for networks with several supervised outputs."""
import contextlib
import os
from collections import OrderedDict

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DataParallel

from basicsr_sgenet.archs.arch_util import final_image
from basicsr_sgenet.integration.batches import accumulate_steps, check_batches
from basicsr_sgenet.integration.errors import NonFiniteLossError, OptionError
from basicsr_sgenet.models.lr_scheduler import CosineAnnealingRestartCyclicLR
from basicsr_sgenet.models.progressive_patches import ProgressivePatches
from basicsr_sgenet.integration.precision import autocast, option_precision, slow_precision_warning, warn_once

# fp16: the gradient scaler skips a step whose loss is inf/NaN and halves its scale; this
# many such steps in a row mean the loss itself is broken (data, lr), not the scale.
MAX_CONSECUTIVE_NON_FINITE_FP16 = 20


def as_float32(output):
    """Cast a network output (tensor or dict of tensors) to fp32, so losses see full precision."""
    if isinstance(output, dict):
        return OrderedDict((key, value.float()) for key, value in output.items())
    return output.float()


@MODEL_REGISTRY.register()
class DeblurModel(SRModel):
    """SRModel for networks that return several supervised images while training: one
    model class for SGENet and every deblurring peer (MPRNet, MIMO-UNet, NAFNet, Restormer,
    FFTformer, Stripformer, MLWNet: its training dict also holds a scalar ``wavelet`` term,
    see ``arch_util.py``).

    In train mode ``network_g`` may return a dict of images (SGENet: ``final``, the stage
    CEM images, ``sam``; MPRNet: ``final``, ``stage2``, ``stage1``); in eval mode it returns
    the restored image. The whole output
    goes to ``pixel_opt`` when that loss understands dicts (it has a ``terms`` method, as
    ``MultiScaleCharbonnierEdgeLoss`` does; with ``uses_blurred_input``, as
    ``StripformerLoss``, the blurred input too); any other pixel loss (e.g. ``L1Loss``) and the
    perceptual loss see only ``final``. Validation, image saving, metrics, EMA
    (``train.ema_decay``), checkpoints and resuming are SRModel's.

    Extra options, all off by default, for the peers' published recipes and beyond:

    - ``train.optim_g.type``: any ``torch.optim`` optimizer (BasicSR: Adam only), e.g.
      AdamW for NAFNet and Restormer.
    - ``train.scheduler.type: CosineAnnealingRestartCyclicLR`` (Restormer's), besides
      BasicSR's own.
    - ``train.grad_clip_norm``: clip the gradients' total norm (NAFNet, Restormer: 0.01).
    - ``train.progressive``: progressive patch sizes and batches (Restormer's; see
      ``progressive_patches.py``).
    - ``train.mixed_precision: bf16 | fp16 | null``. bf16 runs the forward pass under
      ``torch.autocast`` (CPU and CUDA). fp16 adds a gradient scaler (``torch.amp``, CUDA
      and, slowly, CPU); gradients are unscaled before clipping, and the scaler's state is
      saved in the training state (``grad_scaler``) and restored on resume. Losses are
      always computed in fp32. Refused under DataParallel (use torchrun).
    - ``val.mixed_precision: bf16 | fp16 | null``: the same autocast for validation/test.
    - ``train.accumulate: N``: split each process's batch into N micro-batches, one
      optimizer step for all (the same total batch in 1/N of the activation memory).
    - ``train.compile: true`` (or a mapping of ``torch.compile`` arguments, e.g.
      ``{mode: max-autotune}``): compile the training forward pass; validation and saved
      weights use the plain network.

    Logged per iteration: ``l_pix_<output>`` for each supervised output (when the pixel
    loss reports terms), ``l_pix``, ``l_percep`` / ``l_style`` when configured, and
    ``l_total``; with fp16 also ``grad_scale`` and ``skipped_steps`` (steps the scaler
    skipped on inf/NaN so far). A non-finite total loss (on any rank) stops training with
    a ``NonFiniteLossError`` (a RuntimeError) before the optimizer steps, naming the
    iteration, each term and what to try; with fp16 the scaler skips such a step instead,
    and only ``MAX_CONSECUTIVE_NON_FINITE_FP16`` in a row stop the run.
    """

    def __init__(self, opt):
        super().__init__(opt)
        self.val_precision = option_precision(opt, 'val', self.device)
        if self.is_train:
            processes = opt['world_size'] if opt['dist'] else 1
            data_parallel = isinstance(self.net_g, DataParallel)
            check_batches(opt, processes, opt['num_gpu'] if data_parallel else 1)
            self.grad_clip_norm = opt['train'].get('grad_clip_norm')
            self.progressive = ProgressivePatches.from_options(opt['train'], processes=processes)
            self.accumulate = accumulate_steps(opt['train'])
            self.train_precision = option_precision(opt, 'train', self.device)
            use_scaler = self.train_precision == 'fp16'
            self.grad_scaler = torch.amp.GradScaler(self.device.type) if use_scaler else None
            self.skipped_steps = self.non_finite_in_a_row = 0
            if self.train_precision != 'fp32':
                get_root_logger().info(f'Mixed precision training: {self.train_precision}.')
            warn_once(slow_precision_warning(self.train_precision, self.device))
            self.train_forward = self._compiled(opt['train'].get('compile'))
        warn_once(slow_precision_warning(self.val_precision, self.device))

    def _compiled(self, setting):
        """``net_g`` itself, or ``torch.compile(net_g)`` for ``train.compile``: the compiled
        module shares the parameters, so saving, EMA and validation keep using ``net_g``."""
        if setting in (None, False):
            return self.net_g
        if setting is not True and not isinstance(setting, dict):
            raise OptionError(f'train.compile must be true, false or a mapping of torch.compile arguments, '
                              f'not {setting!r}.')
        arguments = {} if setting is True else dict(setting)
        get_root_logger().info(f'Compiling the training forward pass (torch.compile {arguments or "defaults"}).')
        try:
            return torch.compile(self.net_g, **arguments)
        except TypeError as err:
            raise OptionError(f'train.compile: {err}') from None

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        optimizer_class = getattr(torch.optim, str(optim_type), None)
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
            raise OptionError(f'train.optim_g.type is {optim_type!r}, which is not a torch.optim optimizer '
                              '(e.g. Adam, AdamW).')
        return optimizer_class(params, lr, **kwargs)

    def setup_schedulers(self):
        settings = dict(self.opt['train']['scheduler'])
        if settings.pop('type', None) != 'CosineAnnealingRestartCyclicLR':
            return super().setup_schedulers()
        self.schedulers = [CosineAnnealingRestartCyclicLR(optimizer, **settings) for optimizer in self.optimizers]

    def compute_losses(self, output, gt=None, lq=None):
        """All loss terms for one training output (against ``gt`` and from ``lq``, default
        the batch's), by log name; ``l_total`` is their sum."""
        gt = self.gt if gt is None else gt
        losses = OrderedDict()
        total = 0
        if self.cri_pix:
            if hasattr(self.cri_pix, 'terms'):
                # Stripformer's contrastive term also compares with the blurred input.
                blurred = (self.lq if lq is None else lq, ) if getattr(self.cri_pix, 'uses_blurred_input', False) \
                    else ()
                for key, term in self.cri_pix.terms(output, gt, *blurred).items():
                    losses[f'l_pix_{key}'] = term
                losses['l_pix'] = sum(losses.values())
            else:
                losses['l_pix'] = self.cri_pix(final_image(output), gt)
            total = total + losses['l_pix']
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(final_image(output), gt)
            for name, term in (('l_percep', l_percep), ('l_style', l_style)):
                if term is not None:
                    losses[name] = term
                    total = total + term
        losses['l_total'] = total
        return losses

    def _finite_on_every_rank(self, loss):
        """Whether the loss is finite here and, in distributed training, on every rank: all
        ranks must stop together, or the others would hang in the gradient all-reduce."""
        finite = torch.isfinite(loss.detach()).float()
        if self.opt['dist']:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return bool(finite)

    def _raise_on_non_finite(self, losses, current_iter, how_often=''):
        terms = ', '.join(f'{name}={value.item():.4g}' for name, value in losses.items())
        where = (' (here or on another rank)' if self.opt['dist'] else '') + how_often
        bad_input = [name for name, batch in (('lq', self.lq), ('gt', self.gt))
                     if not torch.isfinite(batch).all()]
        hint = (f'The training batch itself contains NaN/inf ({", ".join(bad_input)}): check the data. '
                if bad_input else '')
        raise NonFiniteLossError(
            f'Non-finite training loss at iteration {current_iter}{where}: {terms}. The optimizer did not step. '
            f'{hint}Try a lower learning rate (train.optim_g.lr) or a warm-up (train.warmup_iter), and full '
            'precision (train.mixed_precision: null) if mixed precision is on; resume from the last good checkpoint.')

    def _micro_batches(self):
        """(lq, gt) pairs of ``train.accumulate`` equal parts of the batch."""
        if self.accumulate == 1:
            return [(self.lq, self.gt)]
        if self.lq.shape[0] % self.accumulate:
            raise OptionError(f'train.accumulate is {self.accumulate} but this step\'s batch per process is '
                              f'{self.lq.shape[0]}: each batch must split into equal micro-batches.')
        return list(zip(self.lq.chunk(self.accumulate), self.gt.chunk(self.accumulate)))

    def optimize_parameters(self, current_iter):
        if self.progressive is not None:
            self.lq, self.gt = self.progressive.select(self.lq, self.gt, current_iter)
        self.optimizer_g.zero_grad()
        parts = self._micro_batches()
        outputs, summed = [], OrderedDict()
        non_finite = None
        for index, (lq, gt) in enumerate(parts):
            # DDP all-reduces gradients on the last micro-batch only.
            last = index == len(parts) - 1
            sync = contextlib.nullcontext() if last or not hasattr(self.net_g, 'no_sync') else self.net_g.no_sync()
            with sync:
                with autocast(self.device, self.train_precision):
                    output = self.train_forward(lq)
                output = as_float32(output)
                outputs.append(final_image(output).detach())
                losses = self.compute_losses(output, gt, lq)
                if not self._finite_on_every_rank(losses['l_total']):
                    non_finite = non_finite or losses
                    if self.grad_scaler is None:
                        self._raise_on_non_finite(losses, current_iter)
                # Each part's loss is a mean over its samples: 1/N of each is the whole batch's mean.
                l_part = losses['l_total'] / len(parts)
                (self.grad_scaler.scale(l_part) if self.grad_scaler is not None else l_part).backward()
            for name, value in losses.items():
                summed[name] = summed.get(name, 0) + value.detach() / len(parts)
        self.output = torch.cat(outputs) if len(outputs) > 1 else outputs[0]

        if self.grad_scaler is not None:
            self._scaled_step(non_finite, current_iter)
        else:
            self._clip_gradients()
            self.optimizer_g.step()

        self.log_dict = self.reduce_loss_dict(summed)
        if self.grad_scaler is not None:
            self.log_dict['grad_scale'] = self.grad_scaler.get_scale()
            self.log_dict['skipped_steps'] = self.skipped_steps
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
        self._warn_if_restoring_nothing(current_iter)

    def _scaled_step(self, non_finite, current_iter):
        """fp16: unscale, clip, step unless the gradients hold inf/NaN (the scaler then
        skips the step and lowers its scale); count and log skipped steps."""
        scale = self.grad_scaler.get_scale()
        self.grad_scaler.unscale_(self.optimizer_g)  # clip the true gradients, not the scaled ones
        self._clip_gradients()
        self.grad_scaler.step(self.optimizer_g)
        self.grad_scaler.update()
        if self.grad_scaler.get_scale() < scale:
            self.skipped_steps += 1
            # Overflowing gradients at a finite loss are how the scaler finds its scale
            # (a few at the start, one per growth interval after): info. A loss that is
            # itself inf/NaN is worth a warning.
            log = get_root_logger().warning if non_finite else get_root_logger().info
            log(f'Iteration {current_iter}: fp16 gradients {"of a non-finite loss " if non_finite else ""}held '
                f'inf/NaN; the gradient scaler skipped this step and lowered its scale from {scale:g} to '
                f'{self.grad_scaler.get_scale():g} ({self.skipped_steps} skipped so far).')
        self.non_finite_in_a_row = self.non_finite_in_a_row + 1 if non_finite else 0
        if self.non_finite_in_a_row >= MAX_CONSECUTIVE_NON_FINITE_FP16:
            self._raise_on_non_finite(non_finite, current_iter,
                                      f' ({self.non_finite_in_a_row} iterations in a row in fp16)')

    def save_training_state(self, epoch, current_iter):
        """BasicSR's training state plus, with fp16, the gradient scaler's (``grad_scaler``)."""
        if current_iter == -1:
            return
        if self.grad_scaler is None:
            return super().save_training_state(epoch, current_iter)
        from basicsr_sgenet.integration.patches import atomic_torch_save
        state = {'epoch': epoch, 'iter': current_iter,
                 'optimizers': [optimizer.state_dict() for optimizer in self.optimizers],
                 'schedulers': [scheduler.state_dict() for scheduler in self.schedulers],
                 'grad_scaler': self.grad_scaler.state_dict()}
        path = os.path.join(self.opt['path']['training_states'], f'{current_iter}.state')
        try:
            atomic_torch_save(state, path)
        except OSError as err:  # as BasicSR: a failed state save warns; the previous state remains
            get_root_logger().warning(f'Cannot save training state {path}: {err}.')

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if self.grad_scaler is None:
            return
        saved = resume_state.get('grad_scaler')
        if saved:
            self.grad_scaler.load_state_dict(saved)
            get_root_logger().info(f'Resumed the fp16 gradient scaler at scale {self.grad_scaler.get_scale():g}.')
        else:
            get_root_logger().warning('The resumed training state has no gradient scaler state (saved without fp16 '
                                      'or by an older version): the scaler starts from its default scale.')

    def _clip_gradients(self):
        if self.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip_norm)

    def _warn_if_restoring_nothing(self, current_iter):
        """At each logging iteration, warn if the restored image equals the input bit for
        bit: a network whose last decoder level outputs exactly zero (dead ReLUs) gets no
        gradient there and would otherwise train on silently, restoring nothing."""
        print_freq = self.opt.get('logger', {}).get('print_freq')
        if not print_freq or current_iter % print_freq or not torch.equal(self.output.detach(), self.lq):
            return
        get_root_logger().warning(
            f'Iteration {current_iter}: the restored image equals the blurred input exactly. The network has '
            'stopped restoring (e.g. every unit of its last decoder level switched off) and gets no gradient '
            'there. Lower train.optim_g.lr or add train.warmup_iter, and restart from an earlier checkpoint.')

    def test(self):
        with autocast(self.device, self.val_precision):
            super().test()
        # Metrics and image saving want one fp32 image, whatever the net returned.
        self.output = final_image(self.output).float()


@MODEL_REGISTRY.register()
class SGENetModel(DeblurModel):
    """DeblurModel under its first name, so option files that name it keep working."""
