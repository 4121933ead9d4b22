"""YAML files (the training configuration, ROS 2 parameter files), read with one library: PyYAML.

PyYAML reads YAML 1.1, as ROS 2 reads parameter files (rcl's parser, `ros2 param dump`): `on`, `yes` and `off`
are booleans for both, so a parameter file means the same to the node and to the tools that read it.
"""
from pathlib import Path


def read_yaml(path):
    """The document of the YAML file `path` (plain Python values). OSError when it cannot be read, ValueError
    naming the file when it is not valid YAML, ImportError saying what to install without PyYAML."""
    path = Path(path)
    text = path.read_text(encoding='utf-8')
    try:
        import yaml
    except ImportError as error:
        raise ImportError(f'{path} is YAML: install PyYAML (python3-yaml)') from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f'{path} is not valid YAML: {error}') from error
