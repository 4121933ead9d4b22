"""The node's model from its parameters (openpose_ros.runtime.configured_model)."""
import pytest


def test_model_error_names_the_missing_weights_and_how_to_get_them(tmp_path):
    from openpose_ros.runtime.configured_model import ModelError, load_model
    from openpose_ros.parameters import defaults

    settings = dict(defaults(), weights=str(tmp_path / 'nothing'), download_dir=str(tmp_path / 'cache'))
    with pytest.raises(ModelError) as error:
        load_model(settings, tmp_path)
    message = str(error.value)
    assert message.startswith(f'weights:={tmp_path / "nothing"}: no weights at {tmp_path / "nothing"}')
    assert '"download"' in message and str(tmp_path / 'cache') in message
    assert 'checkpoint_iter_370000.pth' in message and 'OPENPOSE_ROS_MIRROR' in message
