from nuclei3d.fingerprint import PACKAGE_DIR, code_fingerprint


def test_stable_and_distinct():
    assert code_fingerprint("segment") == code_fingerprint("segment")
    assert code_fingerprint("segment") != code_fingerprint("background")
    assert code_fingerprint("segment", "io") != code_fingerprint("segment")


def test_follows_source(tmp_path, monkeypatch):
    (tmp_path / "segment.py").write_text("a = 1\n")
    monkeypatch.setattr("nuclei3d.fingerprint.PACKAGE_DIR", tmp_path)
    before = code_fingerprint("segment")
    (tmp_path / "segment.py").write_text("a = 2\n")
    assert code_fingerprint("segment") != before
    assert PACKAGE_DIR.name == "nuclei3d"


def test_follows_the_kernels_a_module_names(tmp_path, monkeypatch):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "segment.py").write_text('KERNEL = "grow_labels.cl"\n')
    (tmp_path / "background.py").write_text("a = 1\n")
    kernel = tmp_path / "kernels" / "grow_labels.cl"
    kernel.write_text("// one\n")
    monkeypatch.setattr("nuclei3d.fingerprint.PACKAGE_DIR", tmp_path)
    segment, background = code_fingerprint("segment"), code_fingerprint("background")
    kernel.write_text("// two\n")
    assert code_fingerprint("segment") != segment
    assert code_fingerprint("background") == background
