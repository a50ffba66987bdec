"""DeblurModel: BasicSR's SRModel for networks with several supervised outputs."""
from collections import OrderedDict

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from basicsr_sgenet.archs.arch_util import final_image
from basicsr_sgenet.integration.errors import NonFiniteLossError, OptionError
from basicsr_sgenet.models.lr_scheduler import CosineAnnealingRestartCyclicLR
from basicsr_sgenet.models.progressive_patches import ProgressivePatches
from basicsr_sgenet.integration.precision import autocast, option_precision


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
      ``torch.autocast`` (CPU and CUDA). fp16 adds a gradient scaler and needs CUDA.
      Losses are always computed in fp32. The scaler's state is not saved with the
      training state: a resumed fp16 run re-calibrates it in a few iterations.
    - ``val.mixed_precision: bf16 | fp16 | null``: the same autocast for validation/test.

    Logged per iteration: ``l_pix_<output>`` for each supervised output (when the pixel
    loss reports terms), ``l_pix``, ``l_percep`` / ``l_style`` when configured, and
    ``l_total``. A non-finite total loss (on any rank) stops training with a
    ``NonFiniteLossError`` (a RuntimeError) before the optimizer steps, naming the
    iteration, each term and what to try.
    """

    def __init__(self, opt):
        super().__init__(opt)
        if self.is_train:
            self.grad_clip_norm = opt['train'].get('grad_clip_norm')
            self.progressive = ProgressivePatches.from_options(opt['train'])
            self.train_precision = option_precision(opt, 'train', self.device)
            use_scaler = self.train_precision == 'fp16'
            self.grad_scaler = torch.amp.GradScaler(self.device.type) if use_scaler else None
            if self.train_precision != 'fp32':
                get_root_logger().info(f'Mixed precision training: {self.train_precision}.')
        self.val_precision = option_precision(opt, 'val', self.device)

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

    def compute_losses(self, output):
        """All loss terms for one training output, by log name; ``l_total`` is their sum."""
        losses = OrderedDict()
        total = 0
        if self.cri_pix:
            if hasattr(self.cri_pix, 'terms'):
                # Stripformer's contrastive term also compares with the blurred input.
                blurred = (self.lq, ) if getattr(self.cri_pix, 'uses_blurred_input', False) else ()
                for key, term in self.cri_pix.terms(output, self.gt, *blurred).items():
                    losses[f'l_pix_{key}'] = term
                losses['l_pix'] = sum(losses.values())
            else:
                losses['l_pix'] = self.cri_pix(final_image(output), self.gt)
            total = total + losses['l_pix']
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(final_image(output), self.gt)
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

    def _raise_on_non_finite(self, losses, current_iter):
        terms = ', '.join(f'{name}={value.item():.4g}' for name, value in losses.items())
        where = ' (here or on another rank)' if self.opt['dist'] else ''
        bad_input = [name for name, batch in (('lq', self.lq), ('gt', self.gt))
                     if not torch.isfinite(batch).all()]
        hint = (f'The training batch itself contains NaN/inf ({", ".join(bad_input)}): check the data. '
                if bad_input else '')
        raise NonFiniteLossError(
            f'Non-finite training loss at iteration {current_iter}{where}: {terms}. The optimizer did not step. '
            f'{hint}Try a lower learning rate (train.optim_g.lr) or a warm-up (train.warmup_iter), and full '
            'precision (train.mixed_precision: null) if mixed precision is on; resume from the last good checkpoint.')

    def optimize_parameters(self, current_iter):
        if self.progressive is not None:
            self.lq, self.gt = self.progressive.select(self.lq, self.gt, current_iter)
        self.optimizer_g.zero_grad()
        with autocast(self.device, self.train_precision):
            output = self.net_g(self.lq)
        output = as_float32(output)
        self.output = final_image(output)

        losses = self.compute_losses(output)
        l_total = losses['l_total']
        if not self._finite_on_every_rank(l_total):
            self._raise_on_non_finite(losses, current_iter)

        if self.grad_scaler is not None:
            # The scaler skips the step itself when fp16 gradients overflow.
            self.grad_scaler.scale(l_total).backward()
            self.grad_scaler.unscale_(self.optimizer_g)  # clip the true gradients, not the scaled ones
            self._clip_gradients()
            self.grad_scaler.step(self.optimizer_g)
            self.grad_scaler.update()
        else:
            l_total.backward()
            self._clip_gradients()
            self.optimizer_g.step()

        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
        self._warn_if_restoring_nothing(current_iter)

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
