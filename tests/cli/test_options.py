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


def test_a_source_url_in_argv_is_kept_without_its_credentials() -> None:
    argv = ["braze-import", "resume", "r", "--source=https://u:pw-9f2c@h/a.csv?sig=S1G"]
    argv += ["--source", "https://h/b.csv?tok=T0K", "s3://bucket/a?.csv", "local?.csv"]
    assert redact_argv(argv)[3:] == (
        "--source=https://***@h/a.csv?sig=***",
        "--source",
        "https://h/b.csv?tok=***",
        "s3://bucket/a?.csv",
        "local?.csv",
    )


def test_run_resume_and_retry_share_one_definition_of_each_common_option() -> None:
    from importer.cli.run_commands import resume, retry, run

    for name in ("api_key", "quiet", "verbose", "output", "metrics_file"):
        options = [
            next(p for p in command.params if p.name == name) for command in (run, resume, retry)
        ]
        described = {(o.opts[0], getattr(o, "help", None), tuple(o.envvar)) for o in options}
        assert len(described) == 1, described
