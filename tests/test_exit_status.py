"""One exit status convention for the three command lines (g2d, g2d-export, g2d-train: g2d_edge.cli.support)."""


def test_one_exit_status_convention_for_the_three_commands(monkeypatch, capsys):
    import export.cli
    import g2d_edge.cli.commands
    import train.cli
    from g2d_edge.errors import G2DError

    def raising(exc):
        def command(args):
            raise exc
        return command

    cases = [(g2d_edge.cli.commands, "COMMANDS", "verify", ["verify", "a.jpg", "b.jpg"], "g2d"),
             (export.cli, "_COMMANDS", "onnx", ["onnx", "x.pt", "-o", "x.onnx"], "g2d-export"),
             (train.cli, "HANDLERS", "eval", ["eval"], "g2d-train")]
    for module, table, name, argv, prog in cases:
        for exc, code in ((G2DError("what to do"), 1), (KeyboardInterrupt(), 130)):
            monkeypatch.setitem(getattr(module, table), name, raising(exc))
            assert module.main(argv) == code, (prog, exc)
            err = capsys.readouterr().err
            assert (f"{prog}: error: what to do" in err) if code == 1 else (f"{prog}: " in err)
