"""The train executable (openpose_ros.cli.train): its flags override the config file."""
import json

import pytest

pytestmark = pytest.mark.usefixtures('one_torch_thread')


# --- the executable's config ---------------------------------------------------------------------------
def test_train_flags_override_the_config(tmp_path):
    from openpose_ros.command_line import apply_config, default_config_path, load_config
    from openpose_ros.cli.train import build_parser
    shipped = default_config_path()
    assert shipped is not None and shipped.name == 'training.yaml'
    sections = load_config(shipped)
    parser = build_parser()
    defaults = {a.dest: a.default for a in parser._actions}
    for section in ('learner', 'training', 'augmentation'):
        for key, value in sections[section].items():  # the shipped config is the parser's defaults
            assert key in defaults, key
            assert defaults[key] == value or (key == 'dataset_path' and value is None), key
    config = tmp_path / 'train.json'
    config.write_text(json.dumps({'learner': {'batch_size': 3, 'lr': 0.5}, 'augmentation': {'crop_size': [64, 96]}}))
    argv = ['--config', str(config), '--lr', '0.25']
    parser = build_parser()
    apply_config(parser, argv, ('learner', 'training', 'augmentation'))
    args = parser.parse_args(argv)
    assert (args.batch_size, args.lr, args.crop_size, args.epochs) == (3, 0.25, [64, 96], 280)
    config.write_text(json.dumps({'learner': {'batch_sise': 3}}))
    with pytest.raises(SystemExit):
        apply_config(build_parser(), argv, ('learner',))
