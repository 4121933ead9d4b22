"""Networks: exact weight layout of the published model, checkpoint round trip, output shapes, options."""
import collections
import io

import pytest
import torch

from openpose_ros.keypoints import NUM_HEATMAPS, NUM_PAFS
from openpose_ros.network import BACKBONES, build_network, load_imagenet_backbone, network_stride
from openpose_ros.network.shufflenet import channel_shuffle

INPUT = (1, 3, 256, 392)


def _count(network):
    return sum(p.numel() for p in network.parameters())


def _randomize(network, seed):
    """Random weights and batch-norm statistics, so that every tensor of the state_dict matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.rand(tensor.shape, generator=generator)
            tensor.copy_(values + 0.5 if name.endswith('running_var') else (values - 0.5) * 0.2)
    return network.eval()


# Published checkpoint checkpoint_iter_370000.pth (and OpenDR's openpose_default): 1 refinement stage.
MOBILENET_LAYOUT = {1: (4_091_698, 250), 2: (5_700_331, 338), 3: (7_308_964, 426)}

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
# Names that the published weights do not have: a layout with them would fail a strict load.
MOBILENET_ABSENT = ('model.0.0.bias', 'model.1.0.bias', 'model.1.3.bias', 'cpm.trunk.0.0.bias', 'cpm.trunk.0.1.weight',
                    'model.12.0.weight', 'initial_stage.trunk.0.1.weight')


@pytest.mark.parametrize('stages', sorted(MOBILENET_LAYOUT))
def test_mobilenet_weight_layout_is_the_published_one(stages):
    params, entries = MOBILENET_LAYOUT[stages]
    for use_stride in (False, True):
        network = build_network('mobilenet', num_refinement_stages=stages, mobilenet_use_stride=use_stride)
        state = network.state_dict()
        assert _count(network) == params
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


def test_checkpoint_in_original_format_round_trips(tmp_path):
    torch.manual_seed(0)
    trained = _randomize(build_network('mobilenet'), seed=1)
    # What the reference training script writes: Adam's and MultiStepLR's state_dicts as data (a Counter of
    # milestones, tuples, tensors), here without running an optimiser.
    parameters = list(trained.parameters())
    optimizer = {
        'state': {i: {'step': torch.tensor(370000.0), 'exp_avg': torch.zeros_like(p), 'exp_avg_sq': torch.zeros_like(p)}
                  for i, p in enumerate(parameters)},
        'param_groups': [{'lr': 4e-5 * 0.333 ** 3, 'betas': (0.9, 0.999), 'eps': 1e-08, 'weight_decay': 5e-4,
                          'amsgrad': False, 'initial_lr': 4e-5, 'params': list(range(len(parameters)))}],
    }
    scheduler = {'milestones': collections.Counter([100, 200, 260]), 'gamma': 0.333, 'base_lrs': [4e-5],
                 'last_epoch': 280, 'verbose': False, '_step_count': 281, '_get_lr_called_within_step': False,
                 '_last_lr': [4e-5 * 0.333 ** 3]}
    path = tmp_path / 'checkpoint_iter_370000.pth'
    torch.save({'state_dict': trained.state_dict(), 'optimizer': optimizer, 'scheduler': scheduler,
                'iter': 370000, 'current_epoch': 279}, path)

    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    assert sorted(checkpoint) == ['current_epoch', 'iter', 'optimizer', 'scheduler', 'state_dict']
    torch.manual_seed(123)
    fresh = build_network('mobilenet').eval()
    x = torch.rand((1, 3, 96, 136), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = trained(x)
        before = fresh(x)
    assert not torch.equal(before[-1], expected[-1])
    fresh.load_state_dict(checkpoint['state_dict'], strict=True)
    with torch.no_grad():
        got = fresh(x)
    assert len(got) == len(expected) == 4
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    # The same weights drive the stride-16 variant: no shape depends on the stride.
    strided = build_network('mobilenet', mobilenet_use_stride=True)
    strided.load_state_dict(checkpoint['state_dict'], strict=True)


@pytest.mark.parametrize('backbone, options, stride, size', [
    ('mobilenet', {}, 8, (32, 49)),
    ('mobilenet', {'mobilenet_use_stride': True}, 16, (16, 25)),
    ('mobilenetv2', {}, 8, (32, 49)),
    ('shufflenet', {}, 8, (32, 49)),
])
def test_output_shapes(backbone, options, stride, size):
    torch.manual_seed(0)
    network = build_network(backbone, **options).eval()
    assert network.stride == stride == network_stride(backbone, options.get('mobilenet_use_stride', False))
    assert network.backbone == backbone and network.num_refinement_stages == 1
    with torch.no_grad():
        outputs = network(torch.rand(INPUT))
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [(1, NUM_HEATMAPS, *size), (1, NUM_PAFS, *size)] * 2
    assert all(torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize('stages', [0, 2])
def test_one_output_pair_per_stage(stages):
    network = build_network('mobilenet', num_refinement_stages=stages).eval()
    with torch.no_grad():
        outputs = network(torch.rand(2, 3, 64, 72))
    assert [tuple(o.shape) for o in outputs] == [(2, 19, 8, 9), (2, 38, 8, 9)] * (stages + 1)


def test_other_backbone_options():
    counts = {}
    for width in (0.5, 1.0, 1.4):
        network = build_network('mobilenetv2', mobilenetv2_width=width)
        counts[width] = _count(network)
        assert tuple(network.state_dict()['cpm.align.0.weight'].shape)[1] == (1792 if width == 1.4 else 1280)
    assert counts == {0.5: 3_268_146, 1.0: 4_800_754, 1.4: 7_040_754}
    assert {groups: _count(build_network('shufflenet', shufflenet_groups=groups)) for groups in (1, 3, 8)} == \
        {1: 3_449_002, 3: 3_452_842, 8: 3_526_954}
    state = build_network('shufflenet').state_dict()
    assert tuple(state['model.conv1.weight'].shape) == (24, 3, 3, 3)
    assert tuple(state['model.stage2.ShuffleUnit_Stage2_0.g_conv_1x1_compress.conv1x1.weight'].shape) == (60, 24, 1, 1)
    assert tuple(state['model.stage4.ShuffleUnit_Stage4_3.g_conv_1x1_expand.batch_norm.weight'].shape) == (960,)
    assert tuple(build_network('mobilenetv2').state_dict()['model.features.1.conv.3.weight'].shape) == (16, 32, 1, 1)
    # Options of another backbone change nothing.
    assert _count(build_network('shufflenet', mobilenet_use_stride=True, mobilenetv2_width=0.5)) == 3_452_842
    assert network_stride('shufflenet', mobilenet_use_stride=True) == network_stride('mobilenetv2', True) == 8


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1).expand(2, 6, 3, 4)
    assert channel_shuffle(x, 3)[1, :, 2, 3].tolist() == [0, 2, 4, 1, 3, 5]
    assert channel_shuffle(x, 2)[0, :, 0, 0].tolist() == [0, 3, 1, 4, 2, 5]


@pytest.mark.parametrize('call, message', [
    (lambda: build_network('resnet'), "'mobilenet', 'mobilenetv2', 'shufflenet'"),
    (lambda: build_network('MobileNet'), "'mobilenet', 'mobilenetv2', 'shufflenet'"),
    (lambda: network_stride('vgg'), "'mobilenet', 'mobilenetv2', 'shufflenet'"),
    (lambda: build_network(num_refinement_stages=-1), 'num_refinement_stages'),
    (lambda: build_network(num_refinement_stages=1.5), 'num_refinement_stages'),
    (lambda: build_network('shufflenet', shufflenet_groups=5), '1, 2, 3, 4, 8'),
    (lambda: build_network('mobilenetv2', mobilenetv2_width=0), 'mobilenetv2_width'),
])
def test_bad_options_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    assert BACKBONES == ('mobilenet', 'mobilenetv2', 'shufflenet')


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


@pytest.mark.slow
def test_dynamo_onnx_export_with_dynamic_height_and_width():
    np = pytest.importorskip('numpy')
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    torch.manual_seed(0)
    network = _randomize(build_network('mobilenet'), seed=5)
    height, width = torch.export.Dim('height', min=16, max=4096), torch.export.Dim('width', min=16, max=4096)
    program = torch.onnx.export(network, (torch.rand(INPUT),), dynamo=True, input_names=['data'],
                                output_names=['heatmaps_0', 'pafs_0', 'heatmaps_1', 'pafs_1'],
                                dynamic_shapes={'x': {2: height, 3: width}})
    buffer = io.BytesIO()
    program.save(buffer)
    session = ort.InferenceSession(buffer.getvalue(), providers=['CPUExecutionProvider'])
    for size in ((256, 392), (200, 301)):
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            expected = network(x)
        got = session.run(None, {'data': x.numpy()})
        assert [o.shape for o in got] == [tuple(e.shape) for e in expected]
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4)
