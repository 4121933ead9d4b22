"""The evaluate executable (openpose_ros.cli.evaluate): the stats and the detections file, and bad input refused."""
import json

import pytest

from conftest import MMPOSE_ANNOTATIONS, MMPOSE_IMAGES, TEST_MODEL
from openpose_ros.evaluation.metrics import METRICS
from test_learner_eval import direct_pycocotools

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_evaluate_executable_prints_the_stats_and_writes_the_detections(tmp_path, capsys):
    from openpose_ros.cli.evaluate import main
    code = main(['--weights', str(TEST_MODEL), '--dataset-path', str(MMPOSE_IMAGES), '--images-folder-name', '.',
                 '--annotations-filename', 'test_coco.json', '--no-use-subset', '--device', 'cpu', '--temp-path',
                 str(tmp_path), '--output-name', 'cli.json', '--silent'])
    assert code == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(stats) == set(METRICS)
    assert stats == pytest.approx(direct_pycocotools(MMPOSE_ANNOTATIONS, tmp_path / 'cli.json'), abs=1e-12)


def test_evaluate_executable_refuses_bad_input(tmp_path, capsys):
    from openpose_ros.cli.evaluate import main
    with pytest.raises(SystemExit):
        main(['--weights', str(TEST_MODEL)])  # no dataset
    code = main(['--weights', str(tmp_path / 'missing'), '--dataset-path', str(MMPOSE_IMAGES), '--silent'])
    assert code == 2 and 'error' in capsys.readouterr().err
