"""The message types of bags (openpose_ros.messages.typestore): read from the package's msg files, with rosidl's
hashes."""
import json

import pytest

pytest.importorskip('rosbags')

from conftest import DATA, ROOT  # noqa: E402
import openpose_ros.messages.typestore as messages  # noqa: E402


COCO_MINI = DATA / 'coco' / 'coco-mini'


# Rosidl's hash of Pose2DArray (install/openpose_ros/share/openpose_ros/msg/Pose2DArray.json of a colcon build).
POSE2DARRAY_RIHS01 = 'RIHS01_d7c836df7f2e581da4fbc34355648f5bc21f830c4a34bb65402cb2f111337001'


# --- message types ------------------------------------------------------------------------------------------
def test_message_types_come_from_the_msg_files_with_rosidl_hashes():
    store = messages.typestore()
    assert store.hash_rihs01(messages.POSE_ARRAY) == POSE2DARRAY_RIHS01
    built = ROOT / 'install' / 'openpose_ros' / 'share' / 'openpose_ros' / 'msg'
    for name in messages.MESSAGES if built.is_dir() else ():
        expected = json.loads((built / f'{name}.json').read_text())['type_hashes'][0]['hash_string']
        assert store.hash_rihs01(f'openpose_ros/msg/{name}') == expected


def test_missing_message_definitions_say_where_they_were_looked_for(monkeypatch, tmp_path):
    monkeypatch.setattr(messages, 'message_folder_candidates', lambda: [tmp_path / 'nowhere'])
    with pytest.raises(messages.MessageDefinitionsNotFound, match='(?s)nowhere.*OPENPOSE_ROS_MSG_DIR'):
        messages.message_folder()
