"""Reading and writing weights safely: atomic writes, `weights_only` loading, named mismatches."""
from pathlib import Path

import torch

from openpose_ros.files import atomic_path


class WeightsMismatchError(ValueError):
    """The weights do not fit the network; the message names the parameters that differ."""


def save_checkpoint(checkpoint, path):
    """torch.save, atomically."""
    with atomic_path(path) as temporary:
        torch.save(checkpoint, temporary)


def read_checkpoint(path):
    """Loads a checkpoint file with weights_only=True (a checkpoint is untrusted input), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'no checkpoint at {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or hostile files
        raise ValueError(f'{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {error})') from error


def extract_state_dict(checkpoint):
    """The weights in any of the accepted forms: the original checkpoint dict, OpenDR's or a bare state_dict."""
    if not isinstance(checkpoint, dict):
        raise ValueError(f'a checkpoint must be a dict, got {type(checkpoint).__name__}')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError('the checkpoint holds no state_dict of tensors')
    # Networks trained under (Distributed)DataParallel carry a "module." prefix.
    if state and all(key.startswith('module.') for key in state):
        state = {key[len('module.'):]: value for key, value in state.items()}
    return state


def load_state_strictly(network, state):
    """Copies `state` into `network`, refusing any missing, unexpected or mis-shaped parameter, and any NaN or
    infinite value (weights like that find nobody, silently)."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(f'{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}'
                      for key in set(state) & set(expected) if state[key].shape != expected[key].shape)
    if missing or unexpected or reshaped:
        raise WeightsMismatchError('the weights do not fit this network: ' + '; '.join(
            f'{label} ({len(names)}): {", ".join(names[:8])}{" ..." if len(names) > 8 else ""}'
            for label, names in (('missing', missing), ('unexpected', unexpected), ('wrong shape', reshaped))
            if names))
    non_finite = sorted(key for key, value in state.items()
                        if value.is_floating_point() and not bool(torch.isfinite(value).all()))
    if non_finite:
        raise ValueError(f'the weights hold NaN or infinite values ({len(non_finite)} parameters: '
                         f'{", ".join(non_finite[:8])}{" ..." if len(non_finite) > 8 else ""}); '
                         f'they come from a diverged training or a damaged file')
    network.load_state_dict(state, strict=True)
