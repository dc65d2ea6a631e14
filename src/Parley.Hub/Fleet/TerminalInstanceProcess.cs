using System.Text;
using Microsoft.Extensions.Logging;
using Parley.Hub.Terminals;
using Parley.Terminal;
using Parley.Terminal.Pty;

namespace Parley.Hub.Fleet;

/// <summary>
/// An instance's command under a pseudo-terminal (docs/fleet.md, Terminal). The hub hosts it as the terminal session
/// <c>term:&lt;id&gt;</c>: recorded under <c>&lt;data&gt;/terminals</c> like a <c>parley run</c> session, watched live
/// from <c>/terminals/&lt;id&gt;</c> or <c>parley attach</c>, typed into by admins and by users granted input. Its
/// output also goes to the instance's log as plain-text lines of stream <c>tty</c> (escape sequences removed).
/// </summary>
internal sealed class TerminalInstanceProcess : IInstanceProcess, ITerminalObserver
{
    private const int MaxLineChars = 16 * 1024;
    private readonly Lock _lock = new();
    private readonly string _name;
    private readonly InstanceLogWriter _log;
    private readonly ILogger _logger;
    private readonly TerminalRegistry _registry;
    private readonly Decoder _decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetDecoder();
    private readonly StringBuilder _line = new();
    private char[] _chars = new char[4096];
    private TerminalSession _session = null!;
    private HubTerminal? _terminal;
    private (int Code, int? Signal) _exit;

    private TerminalInstanceProcess(string name, TerminalRegistry registry, InstanceLogWriter log, ILogger logger)
    {
        _name = name;
        _registry = registry;
        _log = log;
        _logger = logger;
    }

    public int Pid => _session.Pid;

    public string? TerminalId => _session.Id;

    public Task Exited { get; private set; } = null!;

    public (int Code, int? Signal) Exit => _exit;

    /// <summary>
    /// Starts the command on a new terminal recorded into the registry's directory and lists it there, owned by
    /// <paramref name="owner"/> (the instance's creator). Throws <see cref="IOException"/> when it cannot run.
    /// </summary>
    public static TerminalInstanceProcess Start(string name, InstanceSpec spec, string cwd, string owner, TerminalRegistry registry, FleetOptions options, InstanceLogWriter log, ILogger logger)
    {
        var process = new TerminalInstanceProcess(name, registry, log, logger);
        // Output may reach the observer before the session is listed: it is logged, and the listing (made under the
        // observer's lock) starts from the recording's length, which already holds it.
        var session = TerminalSession.Start(new TerminalSessionOptions
        {
            Command = [spec.Command, .. spec.Args],
            RecordingDirectory = registry.Directory,
            Name = name,
            WorkingDirectory = cwd,
            Cols = options.TerminalCols,
            Rows = options.TerminalRows,
            Owner = owner,
            Instance = name,
            Environment = InstanceProcesses.ExtraEnvironment(name, spec),
        }, observer: process);
        lock (process._lock)
        {
            process._session = session;
            try
            {
                process._terminal = registry.Host(session, owner);
            }
            catch
            {
                session.Dispose();
                throw;
            }
        }
        process.Exited = process.WaitForExitAsync();
        return process;
    }

    public void Kill()
    {
        if (!_session.Completion.IsCompleted)
        {
            InstanceProcesses.KillTree(_session.Pid); // descendants that left the terminal's process group too
        }
        _session.Signal(SignalNumbers.Kill);
    }

    public void Dispose() => _session.Dispose();

    // The listing ends here in every case, even when OnExit never came (an observer that throws is dropped by the
    // session, so a fault in this class must not leave term:<id> listed as live for ever).
    private async Task WaitForExitAsync()
    {
        int? exitCode;
        int? signal;
        try
        {
            var exit = await _session.Completion;
            _exit = (exit.Code, exit.Signal);
            (exitCode, signal) = (exit.ExitCode, exit.Signal);
        }
        catch (Exception ex)
        {
            // The terminal failed under the command, which was killed for it (the session's own rule).
            FleetLog.TerminalFailed(_logger, _name, ex);
            WriteLog("hub", "terminal failed: " + ex.Message);
            _exit = (128 + SignalNumbers.Kill, SignalNumbers.Kill);
            (exitCode, signal) = (null, SignalNumbers.Kill);
        }
        lock (_lock)
        {
            if (_terminal is { } terminal)
            {
                _registry.End(terminal, exitCode, signal);
            }
        }
    }

    // The observer's calls never throw: a failure is logged and the other half (log or live session) goes on.
    void ITerminalObserver.OnOutput(long offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            try
            {
                Log(data, flush: false);
                _terminal?.RecordOutput(offset, data);
            }
            catch (Exception ex)
            {
                FleetLog.TerminalFailed(_logger, _name, ex);
            }
        }
    }

    void ITerminalObserver.OnInput(long offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            try
            {
                _terminal?.RecordInput(offset, data);
            }
            catch (Exception ex)
            {
                FleetLog.TerminalFailed(_logger, _name, ex);
            }
        }
    }

    void ITerminalObserver.OnResize(long timeUs, int cols, int rows)
    {
        lock (_lock)
        {
            try
            {
                _terminal?.Resize(cols, rows);
            }
            catch (Exception ex)
            {
                FleetLog.TerminalFailed(_logger, _name, ex);
            }
        }
    }

    void ITerminalObserver.OnExit(TerminalExit exit)
    {
        lock (_lock)
        {
            try
            {
                Log([], flush: true);
                if (_terminal is { } terminal)
                {
                    _registry.End(terminal, exit.ExitCode, exit.Signal);
                }
            }
            catch (Exception ex)
            {
                FleetLog.TerminalFailed(_logger, _name, ex);
            }
        }
    }

    // Terminal output as log lines: decoded across chunk boundaries, split at \n, cleaned (TerminalText.PlainLine).
    // A line of only escape sequences (a screen clear, a cursor move) is no line; a line longer than MaxLineChars is
    // logged in pieces. The last, unfinished line is logged when the command ends.
    private void Log(ReadOnlySpan<byte> data, bool flush)
    {
        var needed = _decoder.GetCharCount(data, flush);
        if (needed > _chars.Length)
        {
            _chars = new char[needed];
        }
        var count = _decoder.GetChars(data, _chars, flush);
        var text = _chars.AsSpan(0, count);
        while (!text.IsEmpty)
        {
            var newline = text.IndexOf('\n');
            var room = MaxLineChars - _line.Length;
            if (newline < 0 || newline > room)
            {
                // No line end within what fits: this piece fills the line (or takes all there is) and the rest follows.
                var piece = Math.Min(text.Length, room);
                _line.Append(text[..piece]);
                text = text[piece..];
                if (_line.Length >= MaxLineChars)
                {
                    WriteLine();
                }
                continue;
            }
            _line.Append(text[..newline]);
            WriteLine();
            text = text[(newline + 1)..];
        }
        if (flush && _line.Length > 0)
        {
            WriteLine();
        }
    }

    private void WriteLine()
    {
        var raw = _line.ToString();
        _line.Clear();
        var line = TerminalText.PlainLine(raw);
        if (line.Length == 0 && raw.TrimEnd('\r').Length > 0)
        {
            return;
        }
        WriteLog("tty", line);
    }

    private void WriteLog(string stream, string line)
    {
        try
        {
            _log.WriteLine(stream, line);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            FleetLog.LogWriteFailed(_logger, _name, ex);
        }
    }
}
