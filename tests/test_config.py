"""Configuration: unknown keys are errors with a suggestion, invalid values are rejected, YAML round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from sptgnn.config import EMBEDDED_CONFIG, Config, ConfigError, load_config, merge_config

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, content: dict | str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def test_defaults_without_a_file():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.data.dataset == "limesoda:BB.250"
    assert cfg.data.target == "soc_g_kg"


@pytest.mark.parametrize(
    ("content", "wrong", "right"),
    [
        ({"graph": {"k_spatail": 4}}, "graph.k_spatail", "k_spatial"),
        ({"model": {"num_expert": 4}}, "model.num_expert", "num_experts"),
        ({"trian": {"members": 2}}, "trian", "train"),
    ],
)
def test_misspelt_key_names_the_key_and_suggests_the_right_one(tmp_path, content, wrong, right):
    path = _write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert f"'{wrong}'" in msg
    assert f"did you mean '{right}'" in msg
    assert str(path) in msg
    assert "\n" not in msg


def test_misspelt_key_without_close_match_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, {"loss": {"zzzzzz": 1}}))
    msg = str(info.value)
    assert "did you mean" not in msg
    for key in ("kind", "beta", "moran_weight", "balance_weight"):
        assert key in msg


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"model": {"num_experts": 2, "top_k": 3}}, "top_k"),
        ({"model": {"hidden": 30, "heads": 4}}, "divisible"),
        ({"graph": {"k_elevation": 8, "elevation_candidates": 4}}, "elevation_candidates"),
        ({"graph": {"relations": ["spatial", "spatial"]}}, "duplicates"),
        ({"graph": {"relations": ["spatial", "temporal"]}}, "graph.relations"),
        ({"graph": {"k_spatial": 0}}, "graph.k_spatial"),
        ({"train": {"members": 0}}, "train.members"),
        ({"train": {"val_fraction": 0.7}}, "train.val_fraction"),
        ({"model": {"dropout": 1.0}}, "model.dropout"),
        ({"loss": {"kind": "mae"}}, "loss.kind"),
        ({"data": {"target_transform": "log"}}, "data.target_transform"),
        ({"evaluate": {"baselines": ["lightgbm"]}}, "evaluate.baselines"),
    ],
)
def test_invalid_values_raise(tmp_path, content, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(_write(tmp_path, content))


def test_top_k_equal_to_num_experts_is_valid(tmp_path):
    cfg = load_config(_write(tmp_path, {"model": {"num_experts": 3, "top_k": 3}}))
    assert cfg.model.top_k == cfg.model.num_experts == 3


def test_yaml_round_trip_is_equal(tmp_path, config_factory):
    cfg = config_factory(
        graph={"relations": ["spatial", "elevation"], "k_spatial": 5},
        model={"streams": ["imagery", "position"], "position_scales": [0.25, 3.5], "label_inputs": False},
        loss={"kind": "mse_warmup", "warmup_epochs": 7},
        train={"monitor": "nll", "lr": 1.5e-4},
        evaluate={"baselines": ["random_forest+xy", "xgboost"]},
    )
    assert cfg != Config()
    loaded = load_config(_write(tmp_path, cfg.to_yaml()))
    assert loaded == cfg
    assert loaded.to_yaml() == cfg.to_yaml()


def test_default_yaml_round_trip_is_equal(tmp_path):
    assert load_config(_write(tmp_path, Config().to_yaml())) == Config()


def test_overrides_merge_over_the_file(tmp_path):
    path = _write(tmp_path, {"train": {"members": 3, "epochs": 11}, "data": {"dataset": "limesoda:G.150"}})
    cfg = load_config(path, overrides={"train": {"members": 1}, "model": {"hidden": 32}})
    assert cfg.train.members == 1
    assert cfg.train.epochs == 11  # untouched keys of an overridden section survive
    assert cfg.model.hidden == 32
    assert cfg.data.dataset == "limesoda:G.150"


def test_overrides_are_validated_too():
    with pytest.raises(ConfigError, match="did you mean 'members'"):
        load_config(overrides={"train": {"member": 2}})


def test_missing_file_raises(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_raises(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "data: [unclosed\n  - : :"))


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- data\n- graph\n"))


def test_section_that_is_not_a_mapping_cannot_take_overrides(tmp_path):
    with pytest.raises(ConfigError, match="section 'train' must be a mapping"):
        load_config(_write(tmp_path, "train: 5\n"), overrides={"train": {"members": 1}})


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_is_an_error_not_the_defaults(tmp_path, text):
    """A 0-byte config used to train the built-in default silently (a careless upload, a failed copy)."""
    with pytest.raises(ConfigError, match="is empty"):
        load_config(_write(tmp_path, text))
    assert load_config() == Config()  # no file at all: the schema defaults


def test_a_binary_file_is_a_config_error(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"\x80\x04binary")
    with pytest.raises(ConfigError, match="not a text file"):
        load_config(tmp_path / "c.yaml")


SHIPPED = sorted([*REPO.glob("configs/*.yaml"), *REPO.glob("sptgnn/configs/*.yaml"), *REPO.glob("benchmarks/configs/*.yaml")])


def test_every_config_is_found():
    assert len(SHIPPED) >= 20
    assert REPO / "sptgnn" / "configs" / "limesoda_bb250.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.model.top_k <= cfg.model.num_experts


def test_the_embedded_default_is_bb250():
    assert EMBEDDED_CONFIG == REPO / "sptgnn" / "configs" / "limesoda_bb250.yaml"
    assert load_config(EMBEDDED_CONFIG).data.dataset == "limesoda:BB.250"


def test_no_two_shipped_configs_are_the_same_file_content():
    texts = {}
    for path in SHIPPED:
        if path.is_symlink():  # the package's embedded default points at configs/limesoda_bb250.yaml
            continue
        assert path.read_text() not in texts, f"{path} repeats {texts.get(path.read_text())}"
        texts[path.read_text()] = path


def test_a_base_config_is_merged_key_by_key_and_lists_replace(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {members: 3, epochs: 7}\nevaluate: {baselines: [xgboost, qrf]}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("base: ../base.yaml\ntrain: {epochs: 9}\nevaluate: {baselines: [qrf]}\n")
    cfg = load_config(tmp_path / "sub" / "child.yaml")
    assert (cfg.train.members, cfg.train.epochs) == (3, 9)
    assert cfg.evaluate.baselines == ["qrf"]


def test_a_base_chain_that_loops_or_is_missing_is_a_config_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"base: chain comes back to itself \(a.yaml -> b.yaml -> a.yaml\)"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: gone.yaml\n")
    with pytest.raises(ConfigError, match="config file not found: .*gone.yaml"):
        load_config(tmp_path / "c.yaml")


def test_merge_config_leaves_its_arguments_unchanged():
    base, over = {"a": {"x": 1, "y": [1]}}, {"a": {"y": [2]}}
    assert merge_config(base, over) == {"a": {"x": 1, "y": [2]}}
    assert base == {"a": {"x": 1, "y": [1]}}
    assert over == {"a": {"y": [2]}}


def test_updated_replaces_only_the_named_fields_and_validates():
    cfg = load_config(None)
    new = cfg.updated(model={"fusion": "concat"}, calibration={"method": "none"})
    assert new.model.fusion == "concat"
    assert new.calibration.method == "none"
    assert new.model.hidden == cfg.model.hidden
    assert new.train == cfg.train
    assert cfg.model.fusion == "moe"  # a copy
    with pytest.raises(ValidationError, match="top_k"):
        cfg.updated(model={"top_k": 0})
    with pytest.raises(ValidationError, match="hiddn"):
        cfg.updated(model={"hiddn": 64})


def test_a_table_config_is_saved_without_the_default_dataset(tmp_path):
    cfg = Config.model_validate({"data": {"table": {"path": "edgeroi/t.csv", "x": "x", "y": "y", "crs": "EPSG:28355"}}})
    text = cfg.to_yaml()
    assert "dataset" not in text
    assert "edgeroi/t.csv" in text
    assert cfg.data.source == "table:edgeroi/t.csv"
    assert load_config(_write(tmp_path, text)) == cfg
    assert Config().data.source == "limesoda:BB.250"
