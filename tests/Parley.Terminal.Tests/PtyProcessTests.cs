using System.Text.RegularExpressions;
using Parley.Terminal.Pty;

namespace Parley.Terminal.Tests;

public sealed class PtyProcessTests
{
    [Fact]
    public async Task The_child_sees_its_pseudo_terminal_as_tty()
    {
        using var pty = PtyHarness.Start("tty");
        var exit = await pty.ExitAsync();
        Assert.Equal(new TerminalExit(0, null), exit);
        Assert.Matches(@"^/dev/pts/\d+$", pty.Process.SlavePath);
        Assert.Equal(pty.Process.SlavePath, pty.Text.Trim());
    }

    [Fact]
    public async Task The_child_leads_a_session_whose_controlling_terminal_it_holds_in_the_foreground()
    {
        // /proc/self/stat of the child itself: pid (comm) state ppid pgrp session tty_nr tpgid ...
        using var pty = PtyHarness.Start("cat", "/proc/self/stat");
        await pty.ExitAsync();
        var fields = Regex.Match(pty.Text, @"^(\d+) \(cat\) \S (\d+) (\d+) (\d+) (\d+) (-?\d+)").Groups;
        Assert.True(fields[0].Success, pty.Text);
        var pid = pty.Process.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(pid, fields[1].Value);
        Assert.Equal(pid, fields[3].Value); // process group
        Assert.Equal(pid, fields[4].Value); // session
        Assert.NotEqual("0", fields[5].Value); // a controlling terminal
        Assert.Equal(pid, fields[6].Value); // the terminal's foreground group is the child's
    }

    [Fact]
    public async Task Exit_codes_and_signals_come_back()
    {
        using (var pty = PtyHarness.Start("sh", "-c", "exit 7"))
        {
            var exit = await pty.ExitAsync();
            Assert.Equal(new TerminalExit(7, null), exit);
            Assert.Equal(7, exit.Code);
        }
        using (var pty = PtyHarness.Start("sh", "-c", "kill -TERM $$"))
        {
            var exit = await pty.ExitAsync();
            Assert.Equal(new TerminalExit(null, 15), exit);
            Assert.Equal(143, exit.Code);
        }
    }

    [Fact]
    public async Task Ctrl_C_on_the_terminal_interrupts_the_foreground_job()
    {
        // One process in the foreground group (exec): whether ^C lands before or after the exec, SIGINT ends it.
        using var pty = PtyHarness.Start("sh", "-c", "echo ready; exec sleep 100");
        pty.WaitFor("ready");
        pty.Write("\x03");
        var exit = await pty.ExitAsync();
        Assert.Equal((null, 2, 130), (exit.ExitCode, exit.Signal, exit.Code));
    }

    [Fact]
    public async Task Stty_size_follows_a_resize_and_the_child_gets_SIGWINCH()
    {
        using var pty = new PtyHarness(new PtyStartInfo
        {
            File = "sh",
            Arguments = ["-c", "trap 'stty size; exit 0' WINCH; stty size; echo ready; while :; do sleep 0.05; done"],
            Cols = 90,
            Rows = 30,
        });
        pty.WaitFor("30 90");
        pty.WaitFor("ready");
        pty.Process.Resize(120, 40);
        Assert.Equal((120, 40), pty.Process.Size);
        pty.WaitFor("40 120");
        Assert.Equal(0, (await pty.ExitAsync()).Code);
    }

    [Fact]
    public async Task Input_reaches_the_child_through_the_line_discipline()
    {
        using var pty = PtyHarness.Start("sh", "-c", "read line; echo \"got:$line\"");
        pty.Write("hello\r");
        pty.WaitFor("got:hello");
        Assert.Equal(0, (await pty.ExitAsync()).Code);
        Assert.StartsWith("hello", pty.Text, StringComparison.Ordinal); // echoed by the terminal
    }

    [Fact]
    public void A_missing_program_is_an_error_not_a_child()
    {
        var e = Assert.Throws<IOException>(() => PtyProcess.Start(new PtyStartInfo { File = "no-such-program-parley" }));
        Assert.Contains("no-such-program-parley", e.Message, StringComparison.Ordinal);
    }
}
