import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tifffile

from nuclei3d import view
from nuclei3d.io import StackError, write_stack
from nuclei3d.view import INTERMEDIATES, build_viewer, load_layers, main

from .conftest import in_ci

RAW_VOXEL_UM = (1.0, 0.202, 0.202)
RESULT_VOXEL_UM = (1.0, 1.0, 1.0)
# napari with a Qt5 binding warns once that it cannot detect the system theme.
QT5_THEME = "ignore:System theme detection requires a Qt6 backend:UserWarning"
# npe2 (napari's plugin engine) uses pydantic v1-style fields, on first import.
NPE2_PYDANTIC = "ignore::pydantic.warnings.PydanticDeprecatedSince20"
IN_CI = in_ci()


@pytest.fixture
def folders(tmp_path):
    """A raw stack and one sample's results, as the workflow writes them."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, size=(6, 30, 30), dtype=np.uint8)  # 6 × 6.06 × 6.06 µm
    write_stack(tmp_path / "raw" / "image.tif", raw, RAW_VOXEL_UM)
    sample = tmp_path / "results" / "s1"
    for name in INTERMEDIATES:
        stack = rng.random((6, 6, 6), dtype=np.float32)
        write_stack(sample / f"{name}.tif", stack, RESULT_VOXEL_UM)
    labels = np.zeros((6, 6, 6), np.uint16)
    labels[1:3, 1:4, 1:4] = 1
    labels[3:5, 2:5, 2:5] = 7
    write_stack(sample / "labels.tif", labels, RESULT_VOXEL_UM)
    return tmp_path


def _start_xvfb():
    """Start a private X server; return its display. It ends with this process.

    It is not stopped in a fixture's teardown: Qt keeps its connection until the
    interpreter exits, and a vanished server then kills the process ("XIO: fatal
    IO error"), turning a green run red. PR_SET_PDEATHSIG ends it after pytest.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    read, write = os.pipe()
    process = subprocess.Popen(
        [
            *("Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24"),
            *("-nolisten", "tcp", "-noreset"),
        ],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: libc.prctl(1, signal.SIGTERM),  # PR_SET_PDEATHSIG
    )
    os.close(write)
    # Read the whole line: Xvfb writes the number and the newline separately, and
    # dies ("Cannot write display number") if the pipe is closed in between.
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        raise RuntimeError(f"Xvfb did not start (exit status {process.wait()})")
    _XVFB.append(process)
    return f":{number}"


_XVFB = []  # keeps the Popen alive (no ResourceWarning) until the interpreter ends


@pytest.fixture(scope="session")
def x_display():
    """An X display for napari's OpenGL canvas: $DISPLAY, else a private Xvfb.

    Qt's offscreen platform alone has no OpenGL, and napari needs a context to
    add a layer even to a hidden viewer; with a display it uses GLX there.
    """
    if os.environ.get("DISPLAY"):
        return os.environ["DISPLAY"]
    if sys.platform != "linux" or shutil.which("Xvfb") is None:
        reason = "napari needs an X display for OpenGL: apt-get install xvfb"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return _start_xvfb()


@pytest.fixture
def napari(monkeypatch, request):
    """napari, headless (hidden windows). CI installs it and must run these tests;
    elsewhere they run wherever napari (and Xvfb, or a display) is installed."""
    start = time.perf_counter()
    if IN_CI:
        import napari
    else:
        napari = pytest.importorskip("napari", reason="napari (optional) missing")
    display = request.getfixturevalue("x_display")
    print(f"import napari (and start Xvfb): {time.perf_counter() - start:.2f} s")
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    return napari


def test_layers_in_order_with_their_voxel_sizes(folders):
    layers = load_layers(folders / "results", "s1", image=folders / "raw" / "image.tif")
    assert [layer.name for layer in layers] == ["raw", *INTERMEDIATES, "labels"]
    assert [layer.kind for layer in layers] == ["image"] * 4 + ["labels"]
    assert layers[0].scale == RAW_VOXEL_UM and layers[0].data.shape == (6, 30, 30)
    assert all(layer.scale == RESULT_VOXEL_UM for layer in layers[1:])
    assert layers[-1].data.dtype == np.uint16 and layers[-1].data.max() == 7


def test_missing_intermediate_is_skipped_with_a_warning(folders):
    (folders / "results" / "s1" / "equalized.tif").unlink()
    with pytest.warns(UserWarning, match=r"equalized\.tif: not found, layer"):
        layers = load_layers(folders / "results", "s1")
    assert [layer.name for layer in layers] == ["resampled", "background", "labels"]


def test_missing_labels_is_an_error_naming_the_path(folders):
    path = folders / "results" / "s1" / "labels.tif"
    path.unlink()
    with pytest.raises(FileNotFoundError, match=f"{path}: no labels for sample 's1'"):
        load_layers(folders / "results", "s1")
    with pytest.raises(FileNotFoundError, match="no labels for sample 'other'"):
        load_layers(folders / "results", "other")


def test_raw_stack_without_voxel_size(folders):
    raw = folders / "raw" / "bare.tif"
    tifffile.imwrite(raw, np.zeros((4, 5, 6), np.uint8), photometric="minisblack")
    with pytest.raises(ValueError, match=f"{raw}: no voxel size in its metadata"):
        load_layers(folders / "results", "s1", image=raw)
    layers = load_layers(
        folders / "results", "s1", image=raw, image_voxel_size_um=(2, 0.5, 0.5)
    )
    assert layers[0].scale == (2.0, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"\(2, 0, 0\.5\) must be three positive"):
        load_layers(
            folders / "results", "s1", image=raw, image_voxel_size_um=(2, 0, 0.5)
        )
    with pytest.raises(StackError, match=r"missing\.tif: file not found"):
        load_layers(folders / "results", "s1", image=folders / "missing.tif")


def test_napari_stays_optional():
    # Importing the module (as the doctests and the workflow's tests do) must not
    # import napari, which the workflow does not need.
    code = "import sys, nuclei3d.view; assert 'napari' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings(QT5_THEME, NPE2_PYDANTIC)
def test_viewer_overlays_every_stage_at_true_scale(napari, folders):
    start = time.perf_counter()
    viewer = build_viewer(
        folders / "results", "s1", image=folders / "raw" / "image.tif"
    )
    try:
        print(f"build_viewer: {time.perf_counter() - start:.2f} s")
        assert [layer.name for layer in viewer.layers] == [
            "raw",
            *INTERMEDIATES,
            "labels",
        ]
        *images, labels = viewer.layers
        assert all(isinstance(layer, napari.layers.Image) for layer in images)
        assert not any(isinstance(layer, napari.layers.Labels) for layer in images)
        assert isinstance(labels, napari.layers.Labels)
        np.testing.assert_allclose(images[0].scale, RAW_VOXEL_UM)
        for layer in viewer.layers[1:]:
            np.testing.assert_allclose(layer.scale, RESULT_VOXEL_UM)
        assert all(str(unit) == "micrometer" for unit in labels.units)
        assert np.array_equal(np.unique(labels.data), [0, 1, 7])

        # The raw stack (30 × 0.202 µm) and the results (6 × 1 µm) cover the same
        # space in the world (µm), one voxel centre to the other plus one voxel.
        def covered(layer):
            return np.diff(layer.extent.world, axis=0)[0] + layer.scale

        np.testing.assert_allclose(covered(images[0]), (6, 6.06, 6.06))
        for layer in viewer.layers[1:]:
            np.testing.assert_allclose(covered(layer), (6, 6, 6))
        assert [layer.visible for layer in viewer.layers] == [
            False,
            False,
            False,
            True,
            True,
        ]
        assert viewer.dims.axis_labels == ("z", "y", "x")
        assert viewer.canvas.overlays.scale_bar.visible
    finally:
        viewer.close()

    # Labels alone (no raw stack, no intermediates) still make a viewer.
    for name in INTERMEDIATES:
        (folders / "results" / "s1" / f"{name}.tif").unlink()
    with pytest.warns(UserWarning, match="not found"):
        viewer = build_viewer(folders / "results", "s1")
    try:
        assert [layer.name for layer in viewer.layers] == ["labels"]
    finally:
        viewer.close()


def test_command_line_opens_the_viewer_and_runs_napari(monkeypatch):
    calls = []
    monkeypatch.setattr(
        view, "build_viewer", lambda *args, **kwargs: calls.append((args, kwargs))
    )
    # A stand-in napari: this checks the wiring, not napari's event loop.
    fake_napari = types.SimpleNamespace(run=lambda: calls.append("run"))
    monkeypatch.setitem(sys.modules, "napari", fake_napari)
    argv = ["--results", "res", "--sample", "s1", "--image", "a b.tif"]
    assert main([*argv, "--voxel-size", "1", "0.2", "0.2"]) == 0
    assert calls == [
        (
            ("res", "s1"),
            {"image": "a b.tif", "image_voxel_size_um": [1.0, 0.2, 0.2], "show": True},
        ),
        "run",
    ]


def test_command_line_reports_a_missing_file(folders, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--results", str(folders / "results"), "--sample", "nope"])
    assert exit_info.value.code == 2
    assert "nope/labels.tif: no labels for sample 'nope'" in capsys.readouterr().err


def test_module_runs_as_a_script(folders):
    process = subprocess.run(
        [sys.executable, "-m", "nuclei3d.view", "--sample", "s1", "--results", "x"],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    assert "x/s1/labels.tif: no labels" in process.stderr
