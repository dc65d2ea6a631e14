using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Cli.Terminals;
using Parley.Terminal;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley run</c> (a command under a pseudo-terminal, recorded) and <c>parley term list|export|play</c> over the
/// recordings (docs/terminal-recordings.md). Exit codes: <c>run</c> exits with the command's code (128 + N when
/// signal N killed it; 127 when it could not be started); the others as docs/cli.md.
/// </summary>
internal static class TerminalCommands
{
    private const int CannotRun = 127;

    public static Command Run()
    {
        var command = new Command("run", "Run a command under a pseudo-terminal and record its output and input (docs/terminal-recordings.md); exits with its exit code.");
        var argv = new Argument<string[]>("command") { Description = "The program and its arguments, after --, e.g. -- bash -l.", Arity = ArgumentArity.OneOrMore };
        var name = new Option<string?>("--name") { Description = "A label for the session (default: the program's name)." };
        var allowInput = new Option<bool>("--allow-input") { Description = "Let viewers other than this terminal type into the session (recorded in the meta)." };
        var record = new Option<string?>("--record") { Description = "The directory for the recording (default $XDG_STATE_HOME/parley/terminals)." };
        var cols = new Option<int?>("--cols") { Description = "Columns when standard input is not a terminal (default 80)." };
        var rows = new Option<int?>("--rows") { Description = "Rows when standard input is not a terminal (default 24)." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Do not print where to watch the session, nor the recording's id and path at the end." };
        var offline = new Option<bool>("--offline") { Description = "Only record: publish to no hub and host nothing." };
        command.Arguments.Add(argv);
        command.Options.Add(name);
        command.Options.Add(allowInput);
        command.Options.Add(record);
        command.Options.Add(cols);
        command.Options.Add(rows);
        command.Options.Add(quiet);
        command.Options.Add(offline);
        var common = ClientCommands.CommonOptions(command, userFlag: "--user", json: false);
        command.SetAction(async (parse, ct) =>
        {
            if (!OperatingSystem.IsLinux())
            {
                Console.Error.WriteLine("parley run: pseudo-terminals are supported on Linux only");
                return ExitCodes.Failure;
            }
            var (c, r) = (parse.GetValue(cols) ?? 80, parse.GetValue(rows) ?? 24);
            if (c is < 1 or > 9999 || r is < 1 or > 9999)
            {
                Console.Error.WriteLine("parley run: --cols and --rows must be 1-9999");
                return ExitCodes.Usage;
            }
            ShareTarget target;
            try
            {
                if (parse.GetValue(offline))
                {
                    target = new ShareTarget.None();
                }
                else if (ClientCommands.IsHubConfigured(parse, common))
                {
                    var (server, credentials, _, _) = ClientCommands.Resolve(parse, common);
                    target = new ShareTarget.Hub(server, credentials);
                }
                else
                {
                    target = new ShareTarget.Local();
                }
            }
            catch (IdentityCommands.UsageException ex)
            {
                Console.Error.WriteLine($"parley run: {ex.Message}");
                return ExitCodes.Usage;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"parley run: {ex.Message}");
                return ExitCodes.Failure;
            }
            var tty = LocalTerminal.IsTerminal(LocalTerminal.StdIn);
            if (tty && LocalTerminal.WindowSize(LocalTerminal.StdIn) is { Cols: > 0, Rows: > 0 } size)
            {
                (c, r) = size;
            }
            return await RunAsync(new TerminalSessionOptions
            {
                Command = parse.GetValue(argv)!,
                RecordingDirectory = parse.GetValue(record) ?? ConfigPaths.TerminalRecordings(),
                Name = parse.GetValue(name),
                AllowInput = parse.GetValue(allowInput),
                Cols = c,
                Rows = r,
                CopyModesFrom = tty ? LocalTerminal.StdIn : null,
                LocalOutput = static data => LocalTerminal.Write(LocalTerminal.StdOut, data),
            }, target, tty, parse.GetValue(quiet), ct);
        });
        return command;
    }

    public static Command Term()
    {
        var term = new Command("term", "Terminal recordings made by parley run: list, export, play.");
        term.Subcommands.Add(List());
        term.Subcommands.Add(Export());
        term.Subcommands.Add(Play());
        term.Subcommands.Add(Live());
        var id = new Argument<string>("id") { Description = "The session id." };
        var user = new Argument<string>("user") { Description = "The user to let type into it." };
        var revoke = new Option<bool>("--revoke") { Description = "Stop the user typing instead." };
        term.Subcommands.Add(AdminCommands.Verb("grant", "Let a user type into and resize your running session on the hub (or stop them: --revoke); they are told at once.",
            c => { c.Arguments.Add(id); c.Arguments.Add(user); c.Options.Add(revoke); },
            p => (HttpMethod.Post, $"/api/terminals/{AdminCommands.Escape(p.GetValue(id)!)}/grants", new { user = p.GetValue(user), input = !p.GetValue(revoke) }),
            r => $"{r["user"]} {(r["input"]!.GetValue<bool>() ? "may now type into" : "may no longer type into")} {r["id"]}"));
        return term;
    }

    // The session is built first (its meta, its PTY), then the local terminal goes raw; every way out of the try
    // restores it: the command's exit, an exception, SIGTERM/SIGINT/SIGHUP/SIGQUIT (forwarded to the command, whose
    // exit then ends this), and process exit.
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static async Task<int> RunAsync(TerminalSessionOptions options, ShareTarget target, bool tty, bool quiet, CancellationToken ct)
    {
        // Once the local terminal is raw, a line needs its carriage return spelled out.
        var raw = (LocalTerminal?)null;
        void Say(string message) => Console.Error.Write($"parley run: {message}{(raw is null ? "\n" : "\r\n")}");
        await using var sharing = await SessionSharing.PrepareAsync(target, Say, ct);
        TerminalSession session;
        try
        {
            session = TerminalSession.Start(options);
        }
        catch (RecordingUnavailableException e)
        {
            Console.Error.WriteLine($"parley run: {e.Message} (choose another directory with --record DIR)");
            return ExitCodes.Failure;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            Console.Error.WriteLine($"parley run: {e.Message}");
            return CannotRun;
        }
        if (sharing is not null)
        {
            sharing.Start(session);
            // The page works once the hub has the session; the command runs (and records) meanwhile.
            await sharing.WaitLiveAsync(TimeSpan.FromSeconds(sharing.IsLocal ? 10 : 3));
            if (sharing.IsLocal)
            {
                await TryAsync(() => LocalSessionRegistry.AddAsync(new LocalSessionEntry(session.Id, session.Meta.Name, session.Meta.Command, Environment.ProcessId, session.Pid,
                    session.Prefix, sharing.PageUrl(session.Id).ToString(), session.Meta.StartedAt, options.AllowInput), ct), Say);
            }
            if (!quiet)
            {
                Say($"watch live at {sharing.PageUrl(session.Id)}{(sharing.IsLocal ? " (served by this process while the command runs)" : "")}");
            }
        }

        var registrations = new List<PosixSignalRegistration>();
        EventHandler restoreAtExit = (_, _) => raw?.Restore();
        AppDomain.CurrentDomain.ProcessExit += restoreAtExit;
        TerminalExit exit = default;
        string? recordingFailed = null;
        try
        {
            raw = tty ? LocalTerminal.EnterRaw(LocalTerminal.StdIn) : null;
            foreach (var (signal, number) in new[] { (PosixSignal.SIGTERM, SignalNumbers.Term), (PosixSignal.SIGINT, SignalNumbers.Int), (PosixSignal.SIGHUP, SignalNumbers.Hup), (PosixSignal.SIGQUIT, SignalNumbers.Quit) })
            {
                registrations.Add(PosixSignalRegistration.Create(signal, context =>
                {
                    context.Cancel = true;
                    session.Signal(number);
                }));
            }
            if (tty)
            {
                void Follow()
                {
                    if (LocalTerminal.WindowSize(LocalTerminal.StdIn) is { Cols: > 0, Rows: > 0 } now)
                    {
                        session.Resize(now.Cols, now.Rows);
                    }
                }
                registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGWINCH, _ => Follow()));
                Follow(); // a change between reading the size and registering
            }
            new Thread(() => ForwardInput(session, tty)) { IsBackground = true, Name = "parley-run stdin" }.Start();
            try
            {
                exit = await session.Completion.WaitAsync(ct);
            }
            catch (RecordingUnavailableException e)
            {
                recordingFailed = e.Message; // the session stopped the command: see below
            }
        }
        finally
        {
            foreach (var registration in registrations)
            {
                registration.Dispose();
            }
            raw?.Restore();
            AppDomain.CurrentDomain.ProcessExit -= restoreAtExit;
        }
        raw = null;
        if (recordingFailed is not null)
        {
            // Viewers, fetch_output and the hub's copy all read the recording: a session that cannot record cannot go on.
            if (sharing is { IsLocal: true })
            {
                await TryAsync(() => LocalSessionRegistry.RemoveAsync(session.Id, CancellationToken.None), Say);
            }
            Console.Error.WriteLine($"parley run: the recording failed, so the command was stopped: {recordingFailed}");
            Console.Error.WriteLine($"parley run: what was recorded so far is in {session.Prefix}.*; free some space or record elsewhere with --record DIR");
            return ExitCodes.Failure;
        }
        if (sharing is not null)
        {
            if (!await sharing.DrainAsync())
            {
                Say("the hub did not receive the whole session in time; the local recording has all of it");
            }
            if (sharing.IsLocal)
            {
                await TryAsync(() => LocalSessionRegistry.RemoveAsync(session.Id, CancellationToken.None), Say);
            }
        }
        if (!quiet)
        {
            Console.Error.WriteLine($"parley run: {Describe(exit)}; recorded {session.Id} ({session.Prefix})");
        }
        return exit.Code;
    }

    // The local registry is a convenience (parley term live, parley attach): a failure to update it is said, not fatal.
    private static async Task TryAsync(Func<Task> update, Action<string> say)
    {
        try
        {
            await update();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or IdentityCommands.CliFailure)
        {
            say($"could not update {LocalSessionRegistry.FilePath}: {ex.Message}");
        }
    }

    // Local keystrokes go to the session like any viewer's input. When standard input is not a terminal, its end
    // is passed on as the terminal's end-of-file (Ctrl-D, twice after a partial line) so `echo hi | parley run -- cat` ends.
    private static void ForwardInput(TerminalSession session, bool tty)
    {
        var buffer = new byte[16 * 1024];
        var last = (byte)'\n';
        while (true)
        {
            int n;
            try
            {
                n = LocalTerminal.Read(LocalTerminal.StdIn, buffer);
            }
            catch (IOException)
            {
                return;
            }
            if (n < 0)
            {
                if (!tty)
                {
                    session.WriteInput(last == (byte)'\n' ? "\x04"u8 : "\x04\x04"u8);
                }
                return;
            }
            last = buffer[n - 1];
            if (!session.WriteInput(buffer.AsSpan(0, n)))
            {
                return;
            }
        }
    }

    private static Command List()
    {
        var command = new Command("list", "List the recordings: id, name, start, duration, exit, sizes, command.");
        var dir = DirOption();
        var json = new Option<bool>("--json") { Description = "One JSON object per recording, one per line." };
        command.Options.Add(dir);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            var recordings = RecordingLocator.List(parse.GetValue(dir) ?? ConfigPaths.TerminalRecordings());
            if (parse.GetValue(json))
            {
                foreach (var r in recordings)
                {
                    var node = JsonSerializer.SerializeToNode(r.Meta, MetaJson)!.AsObject();
                    node["prefix"] = r.Prefix;
                    node["output_bytes"] = r.OutputLength;
                    node["input_bytes"] = r.InputLength;
                    Console.WriteLine(node.ToJsonString());
                }
                return ExitCodes.Ok;
            }
            if (recordings.Count == 0)
            {
                Console.WriteLine("no recordings");
                return ExitCodes.Ok;
            }
            Console.WriteLine($"{"ID",-22} {"NAME",-16} {"STARTED (UTC)",-19} {"DURATION",9} {"EXIT",5} {"OUTPUT",9} {"INPUT",8}  COMMAND");
            foreach (var r in recordings)
            {
                var m = r.Meta;
                var duration = m.DurationUs is { } us ? $"{us / 1e6:0.0}s" : "running";
                var code = m.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? (m.Signal is { } s ? $"sig{s}" : "-");
                Console.WriteLine($"{m.Id,-22} {Clip(m.Name, 16),-16} {m.StartedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} {duration,9} {code,5} {Bytes(r.OutputLength),9} {Bytes(r.InputLength),8}  {string.Join(' ', m.Command)}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Live()
    {
        var command = new Command("live", "List the sessions parley run hosts on this machine itself (no hub configured), with where to watch them.");
        var json = new Option<bool>("--json") { Description = "One JSON object per session, one per line." };
        command.Options.Add(json);
        command.SetAction(async (parse, ct) =>
        {
            var live = await LocalSessionRegistry.ListAsync(ct);
            if (parse.GetValue(json))
            {
                foreach (var entry in live)
                {
                    Console.WriteLine(JsonSerializer.Serialize(entry));
                }
                return ExitCodes.Ok;
            }
            if (live.Count == 0)
            {
                Console.WriteLine("no live local sessions");
                return ExitCodes.Ok;
            }
            Console.WriteLine($"{"ID",-22} {"NAME",-16} {"STARTED (UTC)",-19} {"PID",7}  URL");
            foreach (var e in live)
            {
                Console.WriteLine($"{e.Id,-22} {Clip(e.Name, 16),-16} {e.StartedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} {e.Pid,7}  {e.Url}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Export()
    {
        var command = new Command("export", "Write a recording to stdout in another format: --asciicast (v2, plays with asciinema).");
        var session = SessionArgument();
        var asciicast = new Option<bool>("--asciicast") { Description = "asciicast v2: output as \"o\" events, resizes as \"r\"." };
        var input = new Option<bool>("--input") { Description = "Include the input as \"i\" events (it holds whatever was typed, passwords too)." };
        var dir = DirOption();
        command.Arguments.Add(session);
        command.Options.Add(asciicast);
        command.Options.Add(input);
        command.Options.Add(dir);
        command.SetAction(parse =>
        {
            if (!parse.GetValue(asciicast))
            {
                Console.Error.WriteLine("parley term export: choose a format: --asciicast");
                return ExitCodes.Usage;
            }
            if (Open("export", parse.GetValue(session)!, parse.GetValue(dir)) is not { } recording)
            {
                return ExitCodes.NotFound;
            }
            using var stdout = StandardOutput();
            try
            {
                AsciicastExporter.Write(recording, stdout, parse.GetValue(input));
            }
            catch (ReaderGoneException)
            {
                // `| head`: the reader took what it wanted.
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Play()
    {
        var command = new Command("play", "Replay a recording's output on this terminal with its original timing (Ctrl-C stops).");
        var session = SessionArgument();
        var speed = new Option<double?>("--speed") { Description = "Playback speed factor (default 1; 2 is twice as fast)." };
        var maxIdle = new Option<double?>("--max-idle") { Description = "The longest pause, in seconds at playback speed (default 2; 0 = no pauses)." };
        var dir = DirOption();
        command.Arguments.Add(session);
        command.Options.Add(speed);
        command.Options.Add(maxIdle);
        command.Options.Add(dir);
        command.SetAction(async (parse, ct) =>
        {
            var factor = parse.GetValue(speed) ?? 1;
            var idle = parse.GetValue(maxIdle) ?? 2;
            if (factor is <= 0 or > 1000 || idle is < 0 or > 3600)
            {
                Console.Error.WriteLine("parley term play: --speed must be in (0, 1000], --max-idle in [0, 3600] seconds");
                return ExitCodes.Usage;
            }
            if (Open("play", parse.GetValue(session)!, parse.GetValue(dir)) is not { } recording)
            {
                return ExitCodes.NotFound;
            }
            using var ctrlC = new CtrlC(ct);
            using var stdout = StandardOutput();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // Due times add up in playback time, so the pauses never drift however long writes take.
            var due = TimeSpan.Zero;
            long previous = 0;
            try
            {
                foreach (var (timeUs, data) in recording.OutputChunks(64 * 1024))
                {
                    var gap = TimeSpan.FromTicks((long)(Math.Max(0, timeUs - previous) * 10 / factor));
                    due += gap > TimeSpan.FromSeconds(idle) ? TimeSpan.FromSeconds(idle) : gap;
                    previous = timeUs;
                    var wait = due - clock.Elapsed;
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.Delay(wait, ctrlC.Token);
                    }
                    stdout.Write(data);
                    stdout.Flush();
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ReaderGoneException)
            {
                // Ctrl-C, or `| head` took what it wanted.
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static readonly JsonSerializerOptions MetaJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static Argument<string> SessionArgument() =>
        new("session") { Description = "A session id (in --dir) or a recording's path prefix, e.g. ./rec/20250101-120000-ab12." };

    private static Option<string?> DirOption() =>
        new("--dir") { Description = "Where recordings are (default $XDG_STATE_HOME/parley/terminals)." };

    private static RecordingReader? Open(string verb, string session, string? dir)
    {
        var directory = dir ?? ConfigPaths.TerminalRecordings();
        if (RecordingLocator.Resolve(session, directory) is not { } prefix)
        {
            Console.Error.WriteLine($"parley term {verb}: no recording '{session}' (not an id in {directory}, nor a path prefix)");
            return null;
        }
        return RecordingReader.Open(prefix);
    }

    // fd 1 as a plain stream: Console's stream would write terminal setup sequences of its own into the bytes. Not a
    // FileStream: on a regular file it writes with pwrite at offsets of its own and never moves the descriptor's
    // offset, so whatever the shell writes to the same file next (`{ parley term export …; echo; } > f`) overwrote it.
    internal static Stream StandardOutput() => new BufferedStream(new DescriptorStream(LocalTerminal.StdOut), 1 << 16);

    /// <summary>
    /// Writes to a file descriptor with write(2), at the descriptor's own offset. When the reader of a pipe has gone
    /// (EPIPE: <c>parley term play … | head</c>) the write throws <see cref="ReaderGoneException"/> and every later
    /// write, such as the final flush on dispose, is dropped.
    /// </summary>
    private sealed class DescriptorStream(int fd) : Stream
    {
        private const int EPipe = 32;
        private bool _readerGone;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_readerGone)
            {
                return;
            }
            try
            {
                LocalTerminal.Write(fd, buffer);
            }
            catch (IOException e) when (e.HResult == EPipe)
            {
                _readerGone = true;
                throw new ReaderGoneException(e);
            }
        }
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>Standard output is a pipe whose reader has gone: the verb writing to it has nothing left to do.</summary>
    internal sealed class ReaderGoneException(IOException inner) : IOException("standard output's reader has gone", inner);

    private static string Describe(TerminalExit exit) => exit.Signal is { } s ? $"killed by signal {s} (exit {exit.Code})" : $"exit {exit.Code}";

    private static string Clip(string s, int width) => s.Length <= width ? s : s[..(width - 1)] + "…";

    private static string Bytes(long n) => n switch
    {
        < 1024 => $"{n}B",
        < 1024 * 1024 => $"{n / 1024.0:0.0}K",
        _ => $"{n / (1024.0 * 1024):0.0}M",
    };
}
