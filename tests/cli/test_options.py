"""The CLI's shared options: the key never lands in run.json's command line."""

from __future__ import annotations

from importer.cli.options import redact_argv


def test_api_key_is_redacted_from_argv() -> None:
    argv = [
        "braze-import",
        "run",
        "a.csv",
        "--api-key",
        "SECRET",
        "--api-key=SECRET2",
        "--rate",
        "5",
    ]
    redacted = redact_argv(argv)
    assert "SECRET" not in " ".join(redacted)
    assert redacted[-2:] == ("--rate", "5")


def test_run_resume_and_retry_share_one_definition_of_each_common_option() -> None:
    from importer.cli.main import resume, retry, run

    for name in ("api_key", "quiet", "verbose", "output", "metrics_file"):
        options = [
            next(p for p in command.params if p.name == name) for command in (run, resume, retry)
        ]
        described = {(o.opts[0], getattr(o, "help", None), tuple(o.envvar)) for o in options}
        assert len(described) == 1, described
