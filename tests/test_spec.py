"""Specs: loading, profile resolution, and a clear error naming file and key for every mistake."""

from pathlib import Path

import pytest

from harness.errors import SpecError
from harness.spec import available_specs, load_graph, load_spec, resolve, resolve_variants
from harness.tasks import TASKS

REPO_SYSTEMS = Path(__file__).resolve().parents[1] / "systems"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_default_spec_resolves_under_both_profiles() -> None:
    names = available_specs(REPO_SYSTEMS)
    assert {"video_b1", "video_b4", "video_vit"} <= set(names)
    for name in names:
        for profile in ("smoke", "paper"):
            for resolved in load_graph(name, profile, REPO_SYSTEMS):
                variants = {v.name: v for v in resolve_variants(resolved.spec, profile)}
                assert resolved.spec_hash == variants[resolved.name].spec_hash


def test_settings_resolve_kind_defaults_then_spec_then_profile(tmp_path: Path) -> None:
    write(tmp_path, "v", "kind: video\nepochs: 3\nprofiles:\n  smoke: {image_size: 40}\n  paper: {epochs: 12}\n")
    spec = load_spec("v", tmp_path)
    smoke, paper = resolve(spec, "smoke").settings, resolve(spec, "paper").settings
    assert (smoke.backbone, smoke.image_size, smoke.epochs) == ("test_efficientnet", 40, 3)
    assert (paper.backbone, paper.image_size, paper.epochs) == ("efficientnet_b1", 224, 12)
    assert spec.tasks == TASKS and spec.seed == 0


def test_spec_hash_follows_settings(tmp_path: Path) -> None:
    write(tmp_path, "a", "kind: video\nepochs: 3\n")
    write(tmp_path, "b", "kind: video\nepochs: 4\n")
    hashes = {resolve(load_spec(n, tmp_path), "smoke").spec_hash for n in "ab"}
    assert len(hashes) == 2


def test_backbone_args_are_part_of_the_key_and_absent_when_empty(tmp_path: Path) -> None:
    write(tmp_path, "a", "kind: video\nbackbone: test_vit\n")
    write(tmp_path, "b", "kind: video\nbackbone: test_vit\nbackbone_args: {depth: 2}\n")
    write(tmp_path, "c", "kind: video\nbackbone: test_vit\nbackbone_args: {depth: 3}\n")
    a, b, c = (resolve(load_spec(n, tmp_path), "smoke") for n in "abc")
    assert "backbone_args" not in a.canonical()["settings"]  # specs without it keep their store keys
    assert b.canonical()["settings"]["backbone_args"] == {"depth": 2}
    assert len({a.spec_hash, b.spec_hash, c.spec_hash}) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kind: video\nlerning_rate: 0.1\n",
            r"v\.yaml: key 'lerning_rate': unknown setting of kind 'video'; did you mean 'learning_rate'\?",
        ),
        (
            "kind: video\nprofiles:\n  smoke: {epoch: 2}\n",
            r"key 'profiles\.smoke\.epoch': unknown setting.*did you mean 'epochs'",
        ),
        ("kind: video\nprofiles:\n  smok: {}\n", r"key 'profiles\.smok': unknown profile; did you mean 'smoke'"),
        ("kind: vidoe\n", r"v\.yaml: key 'kind': unknown kind 'vidoe'; did you mean 'video'\?"),
        ("kind: video\nepochs: ten\n", r"key 'epochs' \(profile smoke\): .*integer.*found 'ten'"),
        (
            "kind: video\nprofiles:\n  smoke: {backbone: test_vit, backbone_args: {embed_dimm: 64}}\n",
            r"key 'backbone_args' \(profile smoke\): .*'embed_dimm' is not an argument of backbone 'test_vit' "
            r"\(VisionTransformer\); did you mean 'embed_dim'\?",
        ),
        (
            "kind: video\nbackbone: test_vit\nbackbone_args: {embed_dim: 65}\n",
            r"key 'backbone_args' \(profile smoke\): .*'test_vit' does not build with \{'embed_dim': 65\}",
        ),
        (
            "kind: video\nbackbone_args: {num_classes: 3}\n",
            r"key 'backbone_args' \(profile smoke\): .*'num_classes' is set by the harness",
        ),
        ("kind: video\nbackbone_args: {depth: [1, 2]}\n", r"key 'backbone_args\.depth[.a-z]*' \(profile smoke\)"),
        ("kind: video\ntasks: [va, emotion]\n", r"key 'tasks' must list tasks among va, expr"),
        ("kind: video\nseed: 1.5\n", r"key 'seed' must be an integer"),
        ("epochs: 3\n", r"key 'kind' is missing"),
        ("kind: video\n  epochs: [\n", r"v\.yaml, line \d+: not valid YAML"),
        ("- kind\n", r"a spec is a mapping"),
    ],
)
def test_bad_spec_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "v", text)
    with pytest.raises(SpecError, match=message):
        resolve(load_spec("v", tmp_path), "smoke")


def test_unknown_input_and_unknown_spec(tmp_path: Path) -> None:
    write(tmp_path, "video_b1", "kind: video\n")
    write(tmp_path, "uses", "kind: video\ninputs: [video_b2]\n")
    with pytest.raises(SpecError, match=r"uses\.yaml: key 'inputs': no spec named 'video_b2'.*did you mean 'video_b1'"):
        load_graph("uses", "smoke", tmp_path)
    with pytest.raises(SpecError, match=r"no spec named 'vido_b1'.*did you mean 'video_b1'"):
        load_graph("vido_b1", "smoke", tmp_path)


def test_cycle_between_specs_is_named(tmp_path: Path) -> None:
    write(tmp_path, "a", "kind: video\ninputs: [b]\n")
    write(tmp_path, "b", "kind: video\ninputs: [c]\n")
    write(tmp_path, "c", "kind: video\ninputs: [a]\n")
    with pytest.raises(SpecError, match=r"c\.yaml: key 'inputs': cycle between specs: a → b → c → a"):
        load_graph("a", "smoke", tmp_path)


def test_graph_lists_inputs_first(tmp_path: Path) -> None:
    write(tmp_path, "base", "kind: video\n")
    write(tmp_path, "top", "kind: video\ninputs: [base]\n")
    assert [r.name for r in load_graph("top", "paper", tmp_path)] == ["base", "top"]


def test_faces_in_a_name_moves_the_whole_graph_onto_those_crops() -> None:
    graph = {r.name: r for r in load_graph("dwf[faces=retinaface]", "smoke", REPO_SYSTEMS)}
    plain = {r.name: r for r in load_graph("dwf", "smoke", REPO_SYSTEMS)}
    assert list(graph) == [
        "audio_v3",  # reads no crops: the same node as in plain dwf
        "video_b1[faces=retinaface]",
        "dynamic_b1[faces=retinaface]",
        "video_vit[faces=retinaface]",
        "dynamic_vit[faces=retinaface]",
        "kelm[faces=retinaface]",
        "dwf[faces=retinaface]",
    ]
    assert graph["video_b1[faces=retinaface]"].settings.faces == "retinaface"
    assert graph["dwf[faces=retinaface]"].inputs == (
        "audio_v3",
        "dynamic_b1[faces=retinaface]",
        "dynamic_vit[faces=retinaface]",
        "kelm[faces=retinaface]",
    )
    assert graph["audio_v3"] == plain["audio_v3"]
    assert graph["kelm[faces=retinaface]"].settings == plain["kelm"].settings
    assert graph["kelm[faces=retinaface]"].spec_hash != plain["kelm"].spec_hash  # it reads another input
    # the organizers' crops are these specs' own setting: nothing changes, no node is renamed
    organizers = load_graph("dwf[faces=organizers]", "smoke", REPO_SYSTEMS)
    assert [r.name for r in organizers] == list(plain)


def test_faces_in_a_name_keeps_the_sweep_choice_and_is_checked() -> None:
    names = [r.name for r in load_graph("dynamic_vit_context[faces=retinaface,window_s=4]", "smoke", REPO_SYSTEMS)]
    assert names == ["video_vit[faces=retinaface]", "dynamic_vit_context[window_s=4,faces=retinaface]"]
    assert len(load_graph("dynamic_vit_context[faces=retinaface]", "smoke", REPO_SYSTEMS)) == 1 + 6
    with pytest.raises(SpecError, match=r"'audio_v1' reads no face crops, so 'faces=' changes nothing"):
        load_graph("audio_v1[faces=retinaface]", "smoke", REPO_SYSTEMS)
    with pytest.raises(SpecError, match=r"'faces=' takes one of organizers, retinaface, found mtcnn"):
        load_graph("dwf[faces=mtcnn]", "smoke", REPO_SYSTEMS)


def test_an_input_can_name_its_crops(tmp_path: Path) -> None:
    write(tmp_path, "video", "kind: video\n")
    write(tmp_path, "top", "kind: dynamic\ninputs: ['video[faces=retinaface]']\n")
    graph = load_graph("top", "smoke", tmp_path)
    assert [(r.name, r.inputs) for r in graph] == [
        ("video[faces=retinaface]", ()),
        ("top", ("video[faces=retinaface]",)),
    ]
    assert graph[0].settings.faces == "retinaface"


def test_unknown_profile(tmp_path: Path) -> None:
    write(tmp_path, "v", "kind: video\n")
    with pytest.raises(SpecError, match="unknown profile 'smok'; did you mean 'smoke'"):
        resolve(load_spec("v", tmp_path), "smok")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"kind: video\nepochs: 3\x00\n", r"v\.yaml: not valid YAML \(.*#x0000"),
        (b"kind: video\ndescription: caf\xe9\n", r"v\.yaml: not UTF-8 text \(byte 0xe9 at offset 28\)"),
    ],
)
def test_unreadable_spec_bytes_are_one_line(tmp_path: Path, data: bytes, message: str) -> None:
    (tmp_path / "v.yaml").write_bytes(data)
    with pytest.raises(SpecError, match=message):
        load_spec("v", tmp_path)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("batch_size: 0", r"key 'batch_size' \(profile smoke\): Input should be greater than or equal to 1; found 0"),
        ("frame_step: [0]", r"key 'frame_step' \(profile smoke\): Input should be greater than or equal to 1"),
        ("dropout: 1.5", r"key 'dropout' \(profile smoke\): Input should be less than 1"),
        ("workers: -1", r"key 'workers' \(profile smoke\): Input should be greater than or equal to 0"),
    ],
)
def test_settings_out_of_range_name_the_key(tmp_path: Path, setting: str, message: str) -> None:
    write(tmp_path, "v", f"kind: video\n{setting}\n")
    with pytest.raises(SpecError, match=r"v\.yaml: " + message):
        resolve_variants(load_spec("v", tmp_path), "smoke")


@pytest.mark.parametrize(
    ("kind", "setting"),
    [
        ("audio", "window_s: 0"),
        ("audio", "min_speech: 2"),
        ("dynamic", "heads: 0"),
        ("dynamic", "rate: 0"),
        ("kelm", "c_grid: [1.0, -1.0]"),
        ("kelm", "honest_folds: 1"),
        ("dwf", "folds: 1"),
    ],
)
def test_every_kind_bounds_its_settings(tmp_path: Path, kind: str, setting: str) -> None:
    write(tmp_path, "s", f"kind: {kind}\n{setting}\n")
    with pytest.raises(SpecError, match=rf"s\.yaml: key '{setting.split(':')[0]}[.0-9]*' \(profile smoke\)"):
        resolve_variants(load_spec("s", tmp_path), "smoke")


def test_path_like_input_is_refused_with_file_and_key(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere", "x", "kind: video\n")
    write(tmp_path / "systems", "uses", "kind: kelm\ninputs: [../elsewhere/x]\n")
    with pytest.raises(SpecError, match=r"uses\.yaml: key 'inputs': '\.\./elsewhere/x' is a path"):
        load_graph("uses", "smoke", tmp_path / "systems")


def test_spec_outside_systems_cannot_take_a_systems_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    systems = tmp_path / "systems"
    write(systems, "video_b1", "kind: video\n")
    outside = write(tmp_path / "elsewhere", "video_b1", "kind: video\nepochs: 2\n")
    monkeypatch.chdir(systems)
    with pytest.raises(SpecError, match=r"'\.\./elsewhere/video_b1' is neither a spec name under .* nor an existing"):
        load_graph("../elsewhere/video_b1", "smoke", systems)
    (resolved,) = load_graph("../elsewhere/video_b1.yaml", "smoke", systems)
    assert resolved.name == outside.resolve().as_posix() != "video_b1"
    assert [r.name for r in load_graph("video_b1.yaml", "smoke", systems)] == ["video_b1"]  # the very file: its name


def test_spec_given_by_path_takes_a_variant(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere", "k", "kind: kelm\nwindow_s: [2, 4]\n")
    (resolved,) = load_graph(f"{path}[window_s=4]", "smoke", tmp_path / "systems")
    assert resolved.name == f"{path.resolve().as_posix()}[window_s=4]"
