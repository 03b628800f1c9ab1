"""The public names of docs/architecture.md, and the import cost of the light ones."""

import subprocess
import sys

import trainer


def test_every_public_name_resolves() -> None:
    for name in trainer.__all__:
        assert getattr(trainer, name) is not None, name
    assert callable(trainer.train) and callable(trainer.load_checkpoint)
    assert issubclass(trainer.DatasetError, trainer.TrainerError)
    assert issubclass(trainer.ConfigError, trainer.TrainerError)


def test_configs_import_without_torch() -> None:
    # A fresh interpreter: the API server and the CLI validate configs without torch.
    code = (
        "import sys\n"
        "from trainer import RunConfig, DataConfig, History, RunStatus, recommend_finetune\n"
        "RunConfig(data=DataConfig(dataset='digits'))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "from trainer import train\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
