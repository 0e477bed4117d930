"""The ``lsm`` command line."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numba
import pytest

import lsm
from lsm.__main__ import demo, main


def test_demo_shows_log_softmax_finite_where_log_softmax_of_softmax_underflows():
    stream = io.StringIO()
    demo(stream)
    lines = stream.getvalue().splitlines()
    first_row = next(line for line in lines if line.split()[:1] == ["-999.0"])
    _, probability, naive, exact = first_row.split()
    assert float(probability) == 0.0
    assert naive == "-inf"
    assert float(exact) == -1005.33141
    # the gradient reaching x[0]: lost through log(softmax), exact (-1) through log_softmax
    gradients = [line.split("dL/dx[0] = ")[1] for line in lines if "dL/dx[0] = " in line]
    assert gradients == ["nan", "0", "-1"] * 2


def test_python_dash_m_lsm_demo_runs_as_a_module():
    completed = subprocess.run(
        [sys.executable, "-m", "lsm", "demo"], capture_output=True, text=True, check=True, timeout=300
    )
    assert "-1005.33141" in completed.stdout
    assert "logsumexp(x) = 6.33141" in completed.stdout


def test_lsm_without_a_command_prints_the_help(capsys):
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: lsm ") and "{demo,info,bench}" in captured.out
    assert "show log(softmax(x)) underflowing" in captured.out  # the commands' help lines
    assert captured.err == ""


def test_a_reader_that_stops_early_ends_the_command_quietly():
    # `lsm demo | head -0`: the pipe is closed before lsm writes; no BrokenPipeError traceback
    process = subprocess.Popen(
        [sys.executable, "-m", "lsm", "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 1
    assert stderr == ""


def test_bench_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "seconds of timed rounds per case (at least) (default: 0.2; --quick: 0.02)" in text
    assert "minimum timed rounds per case (default: 5; --quick: 3)" in text
    assert "-1 (rows) and/or 0 (columns) (default: -1 0)" in text


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["demo", "info", "bench"]),
        (["demo"], ["log_softmax"]),
        (["info"], ["--json", "threading layer", "GPU"]),
        (
            ["bench"],
            ["--quick", "--op", "--dtype", "--backend", "--out", "torch_out", "cupyx", "lsm.bench.compare"],
        ),
    ],
)
def test_help_of_each_command(capsys, command, expected):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for word in expected:
        assert word in text


def test_info_reports_threads_cache_gpu_and_backends(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"lsm {lsm.__version__}" in text
    layer = numba.threading_layer()  # lsm info ran a parallel kernel, so Numba has chosen
    assert f"threads: {numba.get_num_threads()} (NUMBA_NUM_THREADS), numba threading layer {layer}" in text
    assert "numba cache: " in text and "gpu: " in text
    assert "  cpu   available    Numba CPU kernels" in text


def test_info_json_is_machine_readable(capsys):
    assert main(["info", "--json"]) == 0
    env = json.loads(capsys.readouterr().out)
    assert env["numba_num_threads"] == numba.get_num_threads()
    assert env["backends"]["cpu"]["available"] is True
    assert set(env["backends"]) == {"cpu", "cuda", "dask"}
    assert env["optional_packages"]["scipy"]  # a test dependency, so installed here
    assert Path(env["numba_cache_dir"]).is_dir()


def test_import_lsm_loads_no_gpu_plotting_or_benchmark_module():
    code = (
        "import sys, lsm; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cupy', 'torch', 'jax', 'matplotlib', 'tqdm') or m.startswith(('numba.cuda', 'lsm.bench'))))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert completed.stdout.strip() == "[]"


def test_bench_cuda_without_cupy_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    assert main(["bench", "--backend", "cuda", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("lsm bench: error: --backend cuda is unavailable: CuPy is not installed")
    assert list(tmp_path.iterdir()) == []


def test_bench_without_tqdm_says_which_extra_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 2
    assert "tqdm not installed: pip install 'lsm-kernels[bench]'" in capsys.readouterr().err


def test_bench_rejects_a_size_outside_the_table(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--size", "3e5"])
    assert exit_.value.code == 2
    assert "size '3e5' is not one of 1e3 1e4 1e5 1e6 1e7 1e8" in capsys.readouterr().err


def test_info_warns_when_another_distribution_provides_lsm(monkeypatch, capsys):
    from lsm import _info

    # "lsm" on the package index is an unrelated project that also installs a top-level lsm
    monkeypatch.setattr(_info, "_distributions", lambda: {"lsm": ["lsm-kernels", "lsm", "lsm_kernels"]})
    version = _info.importlib.metadata.version
    monkeypatch.setattr(
        _info.importlib.metadata, "version", lambda name: "0.5.10" if name == "lsm" else version(name)
    )
    assert main(["info"]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: the distribution lsm 0.5.10 also installs a top-level 'lsm' package, which replaces or "
        "shadows this one (pip uninstall lsm, then reinstall lsm-kernels)"
    ]


def test_info_has_no_warning_for_lsm_kernels_alone(capsys):
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lsm_other_distributions"] == []
