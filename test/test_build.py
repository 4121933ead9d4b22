"""Networks: exact weight layout of the published model, checkpoint round trip, output shapes, options."""
import collections
import io

import pytest
import torch

from openpose_ros.keypoints import NUM_HEATMAPS, NUM_PAFS
from openpose_ros.network import BACKBONES, build_network, network_stride


INPUT = (1, 3, 256, 392)


def parameter_count(network):
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


def test_other_backbone_options():
    counts = {}
    for width in (0.5, 1.0, 1.4):
        network = build_network('mobilenetv2', mobilenetv2_width=width)
        counts[width] = parameter_count(network)
        assert tuple(network.state_dict()['cpm.align.0.weight'].shape)[1] == (1792 if width == 1.4 else 1280)
    assert counts == {0.5: 3_268_146, 1.0: 4_800_754, 1.4: 7_040_754}
    assert {groups: parameter_count(build_network('shufflenet', shufflenet_groups=groups)) for groups in (1, 3, 8)} == \
        {1: 3_449_002, 3: 3_452_842, 8: 3_526_954}
    state = build_network('shufflenet').state_dict()
    assert tuple(state['model.conv1.weight'].shape) == (24, 3, 3, 3)
    assert tuple(state['model.stage2.ShuffleUnit_Stage2_0.g_conv_1x1_compress.conv1x1.weight'].shape) == (60, 24, 1, 1)
    assert tuple(state['model.stage4.ShuffleUnit_Stage4_3.g_conv_1x1_expand.batch_norm.weight'].shape) == (960,)
    assert tuple(build_network('mobilenetv2').state_dict()['model.features.1.conv.3.weight'].shape) == (16, 32, 1, 1)
    # Options of another backbone change nothing.
    assert parameter_count(build_network('shufflenet', mobilenet_use_stride=True, mobilenetv2_width=0.5)) == 3_452_842
    assert network_stride('shufflenet', mobilenet_use_stride=True) == network_stride('mobilenetv2', True) == 8


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
