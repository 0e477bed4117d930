"""A results document as a markdown table and a PNG plot of throughput as a fraction of copy.

The table has one row per input (op, backend, dtype, shape, axis) and one column per
implementation, each cell ``fraction of copy (GB/s)``, then lsm's speed over the fastest peer
timed with it. The plot has one panel per op and dtype: fraction of copy against the input shape
(ordered by size), one colour per implementation, one line style per axis; the dotted line at 1
is the copy itself.
"""

import itertools
from pathlib import Path

import numpy as np

from .engine import timed_cases
from .table import ALL_DTYPES, OPS, shape_id

PRIMARY = "lsm"  # the implementation the last column compares with the best peer
AXIS_STYLES = {-1: ("-", "last axis"), 0: ("--", "axis 0"), 1: ("-.", "axis 1")}


def _rows(doc):
    """``{(backend, op, dtype, shape, axis): {impl: extra_info}}`` in reading order."""
    rows = {}
    for info in timed_cases(doc).values():
        key = (info["backend"], info["op"], info["dtype"], tuple(info["shape"]), info["axis"])
        rows.setdefault(key, {})[info["impl"]] = info
    ops = list(OPS)

    def order(key):
        backend, op, dtype, shape, axis = key
        return (
            backend,
            ops.index(op) if op in ops else len(ops),
            ALL_DTYPES.index(dtype),
            np.prod(shape),
            shape,
            -axis,
        )

    return dict(sorted(rows.items(), key=lambda item: order(item[0])))


def implementations(doc):
    """The implementation names in ``doc``: lsm's first, then the peers alphabetically."""
    names = {info["impl"] for info in timed_cases(doc).values()}
    first = [PRIMARY, "lsm_alloc", "lsm_in_place"]
    return sorted(names, key=lambda name: (first.index(name) if name in first else len(first), name))


def markdown(headers, rows):
    """A markdown table of ``rows`` (sequences of cells) under ``headers``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def markdown_table(doc):
    """The results as a markdown table (see the module docstring)."""
    rows = _rows(doc)
    if not rows:
        return "(no timed cases)"
    impls = implementations(doc)
    lines = []
    for (backend, op, dtype, shape, axis), by_impl in rows.items():
        first = next(iter(by_impl.values()))
        copy = f"{first['copy_gbps']:.1f}" + (f" ({first['copy_kind']})" if "copy_kind" in first else "")
        cells = [op, backend, dtype, shape_id(shape), axis, copy]
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
    headers = ["op", "backend", "dtype", "shape", "axis", "copy GB/s", *impls, "lsm / best peer"]
    return markdown(headers, lines)


CLIFF = 0.25  # a step between neighbouring row lengths losing more than this is a cliff


def cliffs(doc, drop=CLIFF):
    """Steps of more than ``drop`` in throughput between neighbouring reduced lengths.

    Inputs with the same element count, op, backend, dtype, axis and implementation form a
    series ordered by the reduced length ``n`` (``lsm bench --row-sweep``); each pair of
    neighbours whose slower throughput is below ``1 - drop`` of the faster one is a cliff: a
    kernel path that switches too late or too early. Returns ``(op, backend, dtype, axis,
    impl, (shape, gbps), (shape, gbps))`` tuples, the shorter length first.
    """
    series = {}
    for info in timed_cases(doc).values():
        shape, axis = tuple(info["shape"]), info["axis"]
        key = (info["op"], info["backend"], info["dtype"], axis, info["impl"], int(np.prod(shape)))
        series.setdefault(key, []).append((shape[axis], shape, info["gbps"]))
    found = []
    for (op, backend, dtype, axis, impl, _), points in series.items():
        points.sort()
        for (_, shape, gbps), (_, next_shape, next_gbps) in itertools.pairwise(points):
            if min(gbps, next_gbps) < (1 - drop) * max(gbps, next_gbps):
                found.append((op, backend, dtype, axis, impl, (shape, gbps), (next_shape, next_gbps)))
    return found


def cliffs_table(doc, drop=CLIFF):
    """The :func:`cliffs` of ``doc`` as a markdown table (a line saying so when there are none)."""
    found = cliffs(doc, drop)
    if not found:
        return f"No cliff: neighbouring reduced lengths within {drop:.0%} of each other."
    rows = [
        (
            op,
            backend,
            dtype,
            axis,
            impl,
            shape_id(shape),
            f"{gbps:.2f}",
            shape_id(next_shape),
            f"{next_gbps:.2f}",
        )
        for op, backend, dtype, axis, impl, (shape, gbps), (next_shape, next_gbps) in found
    ]
    headers = ["op", "backend", "dtype", "axis", "impl", "shape", "GB/s", "next shape", "GB/s"]
    return f"Cliffs (a step of more than {drop:.0%} between neighbouring lengths):\n\n" + markdown(
        headers, rows
    )


def describe_run(doc):
    """One line naming the machine, its load and the date of a run."""
    machine = doc.get("machine_info", {})
    cpu = machine.get("cpu", {})
    text = f"{cpu.get('brand_raw', 'unknown CPU')}, {cpu.get('count', '?')} CPUs, "
    text += f"numba {machine.get('numba_threading_layer')} x {machine.get('numba_num_threads', '?')} threads"
    if machine.get("gpu"):
        text += f", GPU {machine['gpu']}"
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
    impls = implementations(doc)
    panels = list(dict.fromkeys((backend, op) for backend, op, *_ in rows))  # in the table's order
    dtypes = [dtype for dtype in ALL_DTYPES if any(key[2] == dtype for key in rows)]
    colours = {impl: f"C{i}" for i, impl in enumerate(impls)}

    figure = Figure(figsize=(4.6 * len(dtypes) + 1.0, 3.6 * len(panels) + 1.2), layout="constrained")
    axes = figure.subplots(len(panels), len(dtypes), squeeze=False, sharey=True)
    for (row, (backend, op)), (col, dtype) in ((r, c) for r in enumerate(panels) for c in enumerate(dtypes)):
        ax = axes[row][col]
        keys = [key for key in rows if key[:3] == (backend, op, dtype)]
        shapes = sorted({key[3] for key in keys}, key=lambda shape: (np.prod(shape), shape))
        for impl in impls:
            for axis, (style, _) in AXIS_STYLES.items():
                points = sorted(
                    (shapes.index(key[3]), rows[key][impl]["fraction_of_copy"])
                    for key in keys
                    if key[4] == axis and impl in rows[key]
                )
                if points:
                    ax.plot(*zip(*points, strict=True), style, marker="o", markersize=3, color=colours[impl])
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xticks(range(len(shapes)), [shape_id(shape) for shape in shapes], rotation=35, ha="right")
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(True, alpha=0.3)
        several_backends = len({name for name, _ in panels}) > 1
        ax.set_title(f"{op} {dtype} ({backend})" if several_backends else f"{op} {dtype}", fontsize=10)
        if col == 0:
            ax.set_ylabel("throughput / copy")
    handles = [Line2D([], [], color=colours[impl], marker="o", markersize=3, label=impl) for impl in impls]
    present = {key[4] for key in rows}
    handles += [
        Line2D([], [], color="black", linestyle=style, label=label)
        for axis, (style, label) in AXIS_STYLES.items()
        if axis in present
    ]
    handles.append(Line2D([], [], color="grey", linestyle=":", label="memory copy"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=9)
    figure.suptitle(
        f"Throughput as a fraction of a same-run memory copy (higher is better)\n{describe_run(doc)}",
        fontsize=11,
    )
    figure.savefig(path, dpi=110)


def write_report(doc, folder, stem, with_plot=True, with_cliffs=False):
    """Write ``<stem>.md`` (the markdown table, and ``with_cliffs`` the :func:`cliffs_table` of a
    row-length sweep) and, ``with_plot``, ``<stem>.png`` into ``folder``; return the paths
    written."""
    markdown_path = Path(folder) / f"{stem}.md"
    text = f"Measured on {describe_run(doc)}.\n\n{markdown_table(doc)}\n"
    if with_cliffs:
        text += f"\n{cliffs_table(doc)}\n"
    markdown_path.write_text(text, encoding="utf-8")
    if not with_plot:
        return [markdown_path]
    picture = Path(folder) / f"{stem}.png"
    plot(doc, picture)
    return [markdown_path, picture]
