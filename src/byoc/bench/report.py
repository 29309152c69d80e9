"""The text report of ``byoc local bench``: a table per concurrency, then the ratios."""

from __future__ import annotations

from .result import BenchResult, Run

MIB = 1024 * 1024


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join
    return [line(cell.ljust(w) if i == 1 else cell.rjust(w) for i, (cell, w) in
                 enumerate(zip(row, widths, strict=True))).rstrip() for row in [header, *rows]]


def _run_row(concurrency: int, run: Run, rows: int | None, proxy: bool) -> list[str]:
    load, server = run.load, run.server
    cells = [str(concurrency), run.target, _number(load.requests_per_s),
             _number(load.requests_per_s * rows if rows and run.target != "/ping" else None),
             _number(load.p50_ms, 2), _number(load.p90_ms, 2), _number(load.p99_ms, 2),
             _number(load.max_ms, 1), str(load.non_2xx), str(load.socket_errors),
             _number(server.cpu_cores, 2), _number(server.cpu_ms_per_request, 3),
             _number(server.rss_bytes / MIB, 1),
             _number(server.pss_bytes / MIB if server.pss_bytes is not None else None, 1),
             _number(load.generator_cpu_cores, 2)]
    if proxy:
        cells.append(_number(server.proxy_cpu_cores, 2))
    return cells


def render(result: BenchResult) -> str:
    """The report printed by ``byoc local bench``."""
    compute = result.compute
    rows = result.rows_per_request
    cold = result.cold_start
    lines = [
        f"byoc local bench: {result.backend} backend, {result.target}",
        f"payload {result.payload}: {result.content_type}, {result.payload_bytes:,} bytes, "
        f"{rows if rows is not None else 'unknown'} rows per request; {result.duration_s} s per run;"
        f" load from {result.generator}; {result.cpus} CPUs ({result.machine})",
        f"cold start (start to first /ping 200): {cold.median:.2f} s"
        + (f" (median of {len(cold.samples)}: {', '.join(f'{s:.2f}' for s in cold.samples)})"
           if len(cold.samples) > 1 else ""),
    ]
    if compute.available:
        lines.append(f"compute ceiling (parse + predict + serialise, one process, no HTTP):"
                     f" {_number(compute.calls_per_s)} calls/s"
                     + (f" = {_number(compute.rows_per_s)} rows/s" if compute.rows_per_s else "")
                     + f"; p50 {compute.p50_ms:.3f} ms; CPU {compute.cpu_ms_per_call:.3f} ms/call")
    else:
        lines.append(f"compute ceiling: unavailable ({compute.reason})")
    lines += ["stack ceiling: GET /ping through the same stack, same connections and duration", ""]
    proxy = any(level.invocations.server.proxy_cpu_cores is not None for level in result.levels)
    header = ["conc", "target", "req/s", "rows/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
              "non-2xx", "sock err", "srv CPU", "CPU ms/req", "RSS MiB", "PSS MiB", "gen CPU"]
    if proxy:
        header.append("proxy CPU")
    table = [cells for level in result.levels for run in (level.invocations, level.ping)
             for cells in [_run_row(level.concurrency, run, rows, proxy)]]
    lines += _table(header, table)
    ratio_rows = []
    for level in result.levels:
        cells = [str(level.concurrency), "/invocations"]
        for key in ("requests_per_s", "p50_ms", "cpu_ms_per_request"):
            ratio = level.ratios[key]
            cells += [_number(ratio.stack, 2), _number(ratio.compute, 2)]
        ratio_rows.append(cells)
    lines += ["", "ratios: the /invocations figure divided by the same figure of each ceiling"]
    lines += _table(["conc", "target", "req/s÷ping", "req/s÷compute", "p50÷ping", "p50÷compute",
                     "CPU/req÷ping", "CPU/req÷compute"], ratio_rows)
    lines += [
        "",
        "srv CPU: cores busy over the run (CPU seconds of every server process / wall seconds);"
        " gen CPU: the same for the load generator" + ("; proxy CPU: docker-proxy" if proxy else ""),
        "RSS MiB: summed VmRSS (pages shared by forked workers count once per process);"
        " PSS MiB: summed Pss (shared pages divided among sharers: the memory really held)",
        "compute is one process on one core: a server with several workers can pass 1.0 of it",
    ]
    if result.generator == "wrk":
        lines.append("non-2xx: wrk counts answers with status >= 400")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)
