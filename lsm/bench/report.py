"""Reading a results document: a markdown table and a PNG plot of throughput as a fraction of copy.

The table has one row per input (op, backend, dtype, shape, axis) and one column per
implementation, each cell ``fraction of copy (GB/s)``, then lsm's speed over the fastest peer
measured beside it. The plot has one panel per op and dtype: fraction of copy against the input
shape (ordered by size), one colour per implementation, solid for the last axis, dashed for the
first and dash-dotted for the second; the dotted line at 1 is the copy itself.
"""

from pathlib import Path

import numpy as np

from .cases import DTYPES, OPS, shape_id
from .results import timed_cases

PRIMARY = "lsm"  # the implementation the last column compares with the best peer


def _order(values, preferred):
    return sorted(values, key=lambda v: (preferred.index(v) if v in preferred else len(preferred), v))


def _rows(doc):
    """``{(backend, op, dtype, shape, axis): {impl: extra_info}}`` in reading order."""
    rows = {}
    for info in timed_cases(doc).values():
        key = (info.get("backend", "cpu"), info["op"], info["dtype"], tuple(info["shape"]), info["axis"])
        rows.setdefault(key, {})[info["impl"]] = info
    ops, dtypes = list(OPS), list(DTYPES)
    return dict(
        sorted(
            rows.items(),
            key=lambda item: (
                item[0][0],
                ops.index(item[0][1]) if item[0][1] in ops else len(ops),
                item[0][1],
                dtypes.index(item[0][2]) if item[0][2] in dtypes else len(dtypes),
                int(np.prod(item[0][3])),
                item[0][3],
                -item[0][4],
            ),
        )
    )


def implementations(doc):
    """The implementation names in ``doc``: lsm's first, then the peers alphabetically."""
    names = {info["impl"] for info in timed_cases(doc).values()}
    return _order(names, [PRIMARY, "lsm_alloc", "lsm_in_place"])


def markdown(headers, rows):
    """A markdown table of ``rows`` (sequences of cells) under ``headers``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(doc):
    """The results as a markdown table (see the module docstring)."""
    rows = _rows(doc)
    if not rows:
        return "(no timed cases)"
    impls = implementations(doc)
    headers = ["op", "backend", "dtype", "shape", "axis", "copy GB/s", *impls, "lsm / best peer"]
    lines = []
    for (backend, op, dtype, shape, axis), by_impl in rows.items():
        copy = next(iter(by_impl.values()))["copy_gbps"]
        cells = [op, backend, dtype, shape_id(shape), str(axis), f"{copy:.1f}"]
        for impl in impls:
            info = by_impl.get(impl)
            cells.append(f"{info['fraction_of_copy']:.3f} ({info['gbps']:.2f})" if info else "-")
        peers = {impl: info["gbps"] for impl, info in by_impl.items() if not impl.startswith("lsm")}
        if PRIMARY in by_impl and peers:
            best = max(peers, key=peers.get)
            cells.append(f"{by_impl[PRIMARY]['gbps'] / peers[best]:.2f} ({best})")
        else:
            cells.append("-")
        lines.append(cells)
    return markdown(headers, lines)


def describe_run(doc):
    """One line naming the machine and the date of a run."""
    machine = doc.get("machine_info", {})
    threads = machine.get("numba_num_threads", "?")
    layer = machine.get("numba_threading_layer", "?")
    gpu = machine.get("gpu")
    cpu = machine.get("cpu_model") or machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    text = f"{cpu}, {machine.get('cpu_count', '?')} CPUs, numba {layer} x {threads} threads"
    if gpu:
        text += f", GPU {gpu}"
    loads = [machine[key] for key in ("load_average_at_start", "load_average") if key in machine]
    if loads:
        text += f", load average {' -> '.join(f'{load:g}' for load in loads)}"
    return f"{text}; {doc.get('datetime', 'undated')[:16].replace('T', ' ')} UTC"


def plot(doc, path):
    """Write the PNG plot (see the module docstring) of ``doc`` to ``path``."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    rows = _rows(doc)
    if not rows:
        raise ValueError("no timed cases to plot")
    impls = implementations(doc)
    panels = list(dict.fromkeys((backend, op) for backend, op, *_ in rows))  # in the table's order
    dtypes = _order({dtype for _, _, dtype, *_ in rows}, list(DTYPES))
    colours = {impl: f"C{i}" for i, impl in enumerate(impls)}
    styles = {-1: "-", 0: "--", 1: "-."}  # the goal cases reduce the middle axis of a 3-d input too
    axis_names = {-1: "last axis", 0: "axis 0", 1: "axis 1"}

    figure = Figure(figsize=(4.6 * len(dtypes) + 1.0, 3.6 * len(panels) + 1.2), layout="constrained")
    axes = figure.subplots(len(panels), len(dtypes), squeeze=False, sharey=True)
    for (row, (backend, op)), (col, dtype) in ((r, c) for r in enumerate(panels) for c in enumerate(dtypes)):
        ax = axes[row][col]
        shapes = sorted(
            {key[3] for key in rows if key[:3] == (backend, op, dtype)}, key=lambda s: (int(np.prod(s)), s)
        )
        position = {shape: i for i, shape in enumerate(shapes)}
        for impl in impls:
            for axis, style in styles.items():
                points = sorted(
                    (position[key[3]], by_impl[impl]["fraction_of_copy"])
                    for key, by_impl in rows.items()
                    if key[:3] == (backend, op, dtype) and key[4] == axis and impl in by_impl
                )
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, style, marker="o", markersize=3, color=colours[impl], linewidth=1.4)
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels([shape_id(shape) for shape in shapes], rotation=35, ha="right", fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
        title = f"{op} {dtype}" if len({b for b, _ in panels}) == 1 else f"{op} {dtype} ({backend})"
        ax.set_title(title, fontsize=10)
        if col == 0:
            ax.set_ylabel("throughput / copy")
    handles = [Line2D([], [], color=colours[impl], marker="o", markersize=3, label=impl) for impl in impls]
    present = {key[4] for key in rows}
    handles += [
        Line2D([], [], color="black", linestyle=style, label=axis_names[axis])
        for axis, style in styles.items()
        if axis in present
    ]
    handles.append(Line2D([], [], color="grey", linestyle=":", label="memory copy"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=9)
    figure.suptitle(
        f"Throughput as a fraction of a same-run memory copy (higher is better)\n{describe_run(doc)}",
        fontsize=11,
    )
    figure.savefig(path, dpi=110)


def write_report(doc, folder, stem, with_plot=True, table=None):
    """Write ``<stem>.md`` (``table``, by default :func:`markdown_table`'s) and ``<stem>.png``
    into ``folder``; return the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown_table(doc) if table is None else table
    markdown = folder / f"{stem}.md"
    markdown.write_text(f"Measured on {describe_run(doc)}.\n\n{text}\n", encoding="utf-8")
    written = [markdown]
    if with_plot:
        picture = folder / f"{stem}.png"
        plot(doc, picture)
        written.append(picture)
    return written


def main(argv=None):
    """``scripts/bench_report.py RESULTS.json [--out DIR]``."""
    import argparse

    from .results import load

    parser = argparse.ArgumentParser(
        prog="bench_report.py",
        description="Write a markdown table (<name>.md) and a PNG plot (<name>.png) of a results file "
        "written by lsm bench or pytest --benchmark-json: throughput as a fraction of a same-run "
        "memory copy, per implementation, against the input shape; one panel per op and dtype.",
    )
    parser.add_argument("results", metavar="RESULTS.json")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the results file's folder)")
    parser.add_argument("--no-plot", action="store_true", help="write only the markdown table")
    args = parser.parse_args(argv)
    try:
        doc = load(args.results)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    if not timed_cases(doc):
        parser.error(f"{args.results}: no timed lsm cases (was it a run with --benchmark-disable?)")
    path = Path(args.results)
    for written in write_report(doc, args.out or path.parent, path.stem, with_plot=not args.no_plot):
        print(f"wrote {written}")
    return 0
