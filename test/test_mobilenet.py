"""MobileNet v1, the published model's backbone (openpose_ros.network.mobilenet): its exact weight layout, strides
and dilations, and the ImageNet backbone's weights mapped onto it."""
import pytest
import torch

from openpose_ros.network import build_network, load_imagenet_backbone
from test_build import parameter_count


# Published checkpoint checkpoint_iter_370000.pth (and OpenDR's openpose_default): 1 refinement stage.
MOBILENET_LAYOUT = {1: (4_091_698, 250), 2: (5_700_331, 338), 3: (7_308_964, 426)}


# Names that the published weights do not have: a layout with them would fail a strict load.
MOBILENET_ABSENT = ('model.0.0.bias', 'model.1.0.bias', 'model.1.3.bias', 'cpm.trunk.0.0.bias', 'cpm.trunk.0.1.weight',
                    'model.12.0.weight', 'initial_stage.trunk.0.1.weight')


@pytest.mark.parametrize('stages', sorted(MOBILENET_LAYOUT))
def test_mobilenet_weight_layout_is_the_published_one(stages):
    params, entries = MOBILENET_LAYOUT[stages]
    for use_stride in (False, True):
        network = build_network('mobilenet', num_refinement_stages=stages, mobilenet_use_stride=use_stride)
        state = network.state_dict()
        assert parameter_count(network) == params
        assert len(state) == entries
        for name, shape in MOBILENET_SHAPES.items():
            assert tuple(state[name].shape) == shape, name
        last = stages - 1
        assert tuple(state[f'refinement_stages.{last}.trunk.0.initial.0.weight'].shape) == (128, 185, 1, 1)
        assert tuple(state[f'refinement_stages.{last}.pafs.1.0.weight'].shape) == (38, 128, 1, 1)
        assert not any(name.startswith(f'refinement_stages.{stages}.') for name in state)
        assert not set(MOBILENET_ABSENT) & set(state)
        prefixes = ('model.', 'cpm.', 'initial_stage.', 'refinement_stages.')
        assert all(name.startswith(prefixes) for name in state)
        # 12 backbone blocks: conv + 11 depthwise-separable (the ImageNet model's 12th and 13th are dropped).
        assert {name.split('.')[1] for name in state if name.startswith('model.')} == {str(i) for i in range(12)}


def test_mobilenet_strides_and_dilations():
    plain = build_network('mobilenet').model
    strided = build_network('mobilenet', mobilenet_use_stride=True).model
    strides = [block[0].stride[0] for block in plain]
    assert strides == [2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1]  # conv4_2 (block 6) keeps stride 1
    assert [block[0].stride[0] for block in strided] == [2, 2, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1]
    assert [block[0].dilation[0] for block in plain] == [1] * 7 + [2] + [1] * 4
    assert plain[7][0].padding == (2, 2)
    refinement = build_network('mobilenet').refinement_stages[0].trunk[0].trunk
    assert (refinement[0][0].dilation, refinement[1][0].dilation) == ((1, 1), (2, 2))


def _imagenet_checkpoint(network, seed):
    """A synthetic stand-in for mobilenet_sgd_68.848.pth.tar: DataParallel names, 14 blocks and a classifier,
    no num_batches_tracked (saved before PyTorch had it)."""
    generator = torch.Generator().manual_seed(seed)
    state = {'module.' + name: torch.rand(value.shape, generator=generator)
             for name, value in network.state_dict().items()
             if name.startswith('model.') and not name.endswith('num_batches_tracked')}
    state['module.model.12.0.weight'] = torch.rand(512, 1, 3, 3)
    state['module.model.13.3.weight'] = torch.rand(1024, 1024, 1, 1)
    state['module.fc.weight'] = torch.rand(1000, 1024)
    state['module.fc.bias'] = torch.rand(1000)
    return {'epoch': 150, 'arch': 'mobilenet', 'state_dict': state, 'best_prec1': 68.848}


def test_imagenet_backbone_mapping():
    torch.manual_seed(0)
    network = build_network('mobilenet')
    before = {name: value.clone() for name, value in network.state_dict().items()}
    checkpoint = _imagenet_checkpoint(network, seed=3)
    checkpoint['state_dict']['module.model.5.3.weight'] = torch.rand(7, 7)  # wrong shape: not used

    missing = load_imagenet_backbone(network, checkpoint)

    after = network.state_dict()
    source = checkpoint['state_dict']
    backbone_missing = [name for name in missing if name.startswith('model.')]
    assert backbone_missing == [name for name in after if name.startswith('model.')
                                and (name.endswith('num_batches_tracked') or name == 'model.5.3.weight')]
    assert len(backbone_missing) == (1 + 11 * 2) + 1  # every batch norm's counter, and the wrong shape
    assert [name for name in missing if not name.startswith('model.')] == \
        [name for name in after if not name.startswith('model.')]
    for name, value in after.items():
        if name in missing:
            assert torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, source['module.' + name]), name

    # A bare state_dict without the DataParallel prefix works too.
    bare = {name[len('module.'):]: value for name, value in _imagenet_checkpoint(network, seed=4)['state_dict'].items()}
    missing = load_imagenet_backbone(network, bare)
    assert torch.equal(network.state_dict()['model.11.3.weight'], bare['model.11.3.weight'])
    assert not [name for name in missing if name.startswith('model.') and not name.endswith('num_batches_tracked')]


MOBILENET_SHAPES = {
    'model.0.0.weight': (32, 3, 3, 3),
    'model.0.1.weight': (32,),
    'model.0.1.running_mean': (32,),
    'model.0.1.num_batches_tracked': (),
    'model.1.0.weight': (32, 1, 3, 3),
    'model.1.3.weight': (64, 32, 1, 1),
    'model.6.3.weight': (512, 256, 1, 1),
    'model.11.4.running_var': (512,),
    'cpm.align.0.weight': (128, 512, 1, 1),
    'cpm.align.0.bias': (128,),
    'cpm.trunk.0.0.weight': (128, 1, 3, 3),
    'cpm.trunk.2.2.weight': (128, 128, 1, 1),
    'cpm.conv.0.weight': (128, 128, 3, 3),
    'cpm.conv.0.bias': (128,),
    'initial_stage.trunk.2.0.weight': (128, 128, 3, 3),
    'initial_stage.heatmaps.0.0.weight': (512, 128, 1, 1),
    'initial_stage.heatmaps.1.0.weight': (19, 512, 1, 1),
    'initial_stage.pafs.1.0.weight': (38, 512, 1, 1),
    'initial_stage.pafs.1.0.bias': (38,),
    'refinement_stages.0.trunk.0.initial.0.weight': (128, 185, 1, 1),
    'refinement_stages.0.trunk.0.trunk.0.0.weight': (128, 128, 3, 3),
    'refinement_stages.0.trunk.0.trunk.0.1.running_var': (128,),
    'refinement_stages.0.trunk.4.trunk.1.0.weight': (128, 128, 3, 3),
    'refinement_stages.0.trunk.4.trunk.1.1.num_batches_tracked': (),
    'refinement_stages.0.heatmaps.0.0.weight': (128, 128, 1, 1),
    'refinement_stages.0.heatmaps.1.0.weight': (19, 128, 1, 1),
    'refinement_stages.0.pafs.1.0.bias': (38,),
}
