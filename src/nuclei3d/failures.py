"""Which stacks a run lost, and why: ``{results}/failed_stacks.tsv``.

With ``--keep-going`` a run goes on past a bad stack; at its end
(``workflow/rules/common.smk``, ``onerror``) :func:`failed_stacks` reads the
stage jobs' logs: for each stack, the first stage whose output is missing and
whose log says why (a job logs ``stack <name> failed: <reason>`` for each of its
stacks that failed, or the error that stopped the whole job). A job that failed
writes none of its outputs, so the other stacks of its batch are listed too,
as lost with it (:data:`WITH_ITS_BATCH`); the next run gives each stack that
failed on its own a batch of its own, and finishes the others.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "COLUMNS",
    "WITH_ITS_BATCH",
    "failed_samples",
    "failed_stacks",
    "job_failures",
    "report_description",
    "write_failed_stacks",
]

COLUMNS = ["sample", "stage", "reason", "log"]
# Reason given for a stack whose batch's job failed on another stack.
WITH_ITS_BATCH = "lost with its batch: its job failed on"
_STACK_FAILED = re.compile(r" ERROR \S+: stack (\S+) failed: (.*)")
_ERROR = re.compile(r" ERROR \S+: ")
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def job_failures(text):
    """What a job's log says failed: ({stack: reason}, job-wide reason or None).

    Parameters
    ----------
    text : str
        The log of one stage job (one stack, or a batch).

    Examples
    --------
    >>> log = ("2026-12-02 06:00:00,000 INFO nuclei3d.resample: rule resample\\n"
    ...        "2026-12-02 06:00:00,100 ERROR nuclei3d.resample: stack s2 failed: "
    ...        "s2.tif: not a TIFF file\\nTraceback (most recent call last):\\n"
    ...        "ValueError: s2.tif: not a TIFF file\\n")
    >>> job_failures(log)
    ({'s2': 's2.tif: not a TIFF file'}, None)
    >>> job_failures("2026-12-02 06:00:00,000 ERROR nuclei3d.segment: Traceback "
    ...              "(most recent call last):\\n  File x\\nRuntimeError: no device\\n")
    ({}, 'RuntimeError: no device')
    """
    stacks, job = {}, None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        found = _STACK_FAILED.search(line)
        if found:
            stacks.setdefault(found.group(1), found.group(2).strip())
        elif job is None and _ERROR.search(line):
            # A job-wide error: its traceback's last line is the exception.
            record = [line]
            for following in lines[i + 1 :]:
                if _RECORD.match(following):
                    break
                record.append(following)
            job = next((r.strip() for r in reversed(record) if r.strip()), line)
    return stacks, job


def failed_stacks(samples, stages, output_of, log_of):
    """Why each stack whose outputs are missing is missing them.

    A stage counts when its output is missing and its job log says why: a reason
    for this stack, another stack of the batch that failed the job, an error that
    stopped the whole job, or no end line (killed). Where several stages' logs
    say why (an earlier run's failure at a later stage, say), the newest log is
    the one that counts: the stages' order does not matter.

    Parameters
    ----------
    samples : iterable of str
        The run's stacks.
    stages : iterable of str
        Per-stack stages, in any order.
    output_of, log_of : callable
        ``(stage, sample) -> path`` of the stage's output and job log.

    Returns
    -------
    list of dict
        One row per failed stack: ``sample``, ``stage``, ``reason`` (one line)
        and ``log``.
    """
    rows, logs = [], {}
    for sample in samples:
        found = []
        for stage in stages:
            if Path(output_of(stage, sample)).exists():
                continue
            log = Path(log_of(stage, sample))
            if log not in logs:
                text = log.read_text() if log.exists() else None
                logs[log] = text and (
                    *job_failures(text),
                    " job ends after " in text,
                    log.stat().st_mtime_ns,
                )
            if not logs[log]:
                continue  # never ran: an earlier stage failed, or not asked for
            stacks, job, ended, written = logs[log]
            reason = stacks.get(sample)
            if reason is None and stacks:
                reason = f"{WITH_ITS_BATCH} {', '.join(sorted(stacks))}; rerun"
            reason = reason or job
            if reason is None and not ended:
                reason = "the job ended before it finished (killed, or it crashed)"
            if reason is not None:  # else: it ended well, its output removed since
                found.append((written, stage, reason, log))
        if found:
            _, stage, reason, log = max(found, key=lambda row: row[0])
            rows.append(
                {"sample": sample, "stage": stage, "reason": reason, "log": str(log)}
            )
    return rows


def write_failed_stacks(path, rows):
    """Write the rows of :func:`failed_stacks` as a TSV (none: remove the file).

    Returns
    -------
    pathlib.Path or None
        The file, if any stack failed.
    """
    import pandas as pd

    path = Path(path)
    if not rows:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["reason"] = table["reason"].str.replace(r"\s+", " ", regex=True)
    table.to_csv(path, sep="\t", index=False)
    return path


def report_description(template, failed_list, out, *, stacks, shown=20):
    """The report's description: `template`, and the failed stacks if any.

    Parameters
    ----------
    template : str or os.PathLike
        The workflow's description (reStructuredText).
    failed_list : str or os.PathLike
        ``failed_stacks.tsv``; where it exists its count and first rows are
        added under "Failed stacks".
    out : str or os.PathLike
        Where the description with failures is written.
    stacks : int
        Stacks in the sheet.
    shown : int, optional
        Rows listed.

    Returns
    -------
    pathlib.Path
        `template` where no stack failed, else `out`.
    """
    import pandas as pd

    failed_list = Path(failed_list)
    if not failed_list.exists():
        return Path(template)
    table = pd.read_csv(failed_list, sep="\t", dtype=str, keep_default_na=False)

    def literal(text):  # file names and messages as text, not reST markup
        return re.sub(r"([\\`*_|])", r"\\\1", text)

    lines = [
        "",
        "{% raw %}",
        "",
        "Failed stacks",
        "-------------",
        "",
        f"**{len(table)} of {stacks} stacks failed** in the last run; each with its "
        f"stage, reason and job log in {literal(str(failed_list))}:",
        "",
        *(
            f"- {literal(row.sample)} ({row.stage}): {literal(row.reason)}"
            for row in table.head(shown).itertuples()
        ),
    ]
    if len(table) > shown:
        lines.append(f"- ... and {len(table) - shown} more")
    lines += ["", "{% endraw %}"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(Path(template).read_text() + "\n".join(lines) + "\n")
    return out


def failed_samples(failed_list, *, own_failure=False):
    """The samples of a ``failed_stacks.tsv`` (none where there is no such file).

    Parameters
    ----------
    failed_list : str or os.PathLike
    own_failure : bool, optional
        Leave out the stacks lost with their batch (:data:`WITH_ITS_BATCH`).

    Returns
    -------
    set of str
    """
    import pandas as pd

    if not Path(failed_list).exists():
        return set()
    table = pd.read_csv(failed_list, sep="\t", dtype=str, keep_default_na=False)
    if own_failure and "reason" in table:
        table = table[~table["reason"].str.startswith(WITH_ITS_BATCH)]
    return set(table["sample"])
