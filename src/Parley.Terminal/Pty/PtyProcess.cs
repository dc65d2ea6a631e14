using System.Collections;

namespace Parley.Terminal.Pty;

/// <summary>How a process under a pseudo-terminal ended.</summary>
/// <param name="ExitCode">The exit status when it exited; null when a signal killed it.</param>
/// <param name="Signal">The signal that killed it; null when it exited.</param>
public readonly record struct TerminalExit(int? ExitCode, int? Signal)
{
    /// <summary>The shell convention: the exit status, or 128 + the signal number (SIGINT → 130).</summary>
    public int Code => ExitCode ?? 128 + Signal!.Value;
}

/// <summary>Signal numbers (Linux) for <see cref="PtyProcess.Signal"/> and <see cref="TerminalSession.Signal"/>.</summary>
public static class SignalNumbers
{
    public const int Hup = 1;
    public const int Int = 2;
    public const int Quit = 3;
    public const int Kill = 9;
    public const int Term = 15;
}

/// <summary>What to run under a pseudo-terminal.</summary>
public sealed class PtyStartInfo
{
    /// <summary>The program, searched on PATH when it has no slash.</summary>
    public required string File { get; init; }

    /// <summary>Its arguments (not including argv[0], which is <see cref="File"/>).</summary>
    public IReadOnlyList<string> Arguments { get; init; } = [];

    /// <summary>Working directory; null means this process's.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>The whole environment; null means this process's, with <c>TERM=xterm-256color</c> when TERM is unset.</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>Extra variables laid over <see cref="Environment"/>.</summary>
    public IReadOnlyDictionary<string, string>? ExtraEnvironment { get; init; }

    /// <summary>Initial columns (default 80).</summary>
    public int Cols { get; init; } = 80;

    /// <summary>Initial rows (default 24).</summary>
    public int Rows { get; init; } = 24;

    /// <summary>
    /// A terminal whose modes the new one starts with (as <c>script</c> does: the child sees the local terminal's
    /// erase character, flow control, …); null keeps the kernel's defaults. Ignored when it is not a terminal.
    /// </summary>
    public int? CopyModesFrom { get; init; }
}

/// <summary>
/// A child process whose stdin, stdout and stderr are the slave side of a new pseudo-terminal, which is also its
/// controlling terminal (the child leads a new session and is its foreground group: job control and Ctrl-C work).
/// The parent holds the master: <see cref="Read"/> what the child writes, <see cref="Write"/> what it reads,
/// <see cref="Resize"/> it. Reads and writes are non-blocking; one thread should read and one write.
/// </summary>
public sealed class PtyProcess : IDisposable
{
    private readonly int _master;
    private readonly Task<TerminalExit> _exitTask;
    private int _closed;

    private PtyProcess(int master, string slavePath, int pid)
    {
        _master = master;
        SlavePath = slavePath;
        Pid = pid;
        // A dedicated thread blocks in waitpid: the runtime reaps only the children it started itself.
        var exit = new TaskCompletionSource<TerminalExit>(TaskCreationOptions.RunContinuationsAsynchronously);
        var waiter = new Thread(() =>
        {
            try
            {
                var (code, signal) = PtyNative.WaitForExit(pid);
                exit.SetResult(new TerminalExit(code, signal));
            }
            catch (Exception e)
            {
                exit.SetException(e);
            }
        }) { IsBackground = true, Name = "pty-wait " + pid };
        waiter.Start();
        _exitTask = exit.Task;
    }

    /// <summary>The child's process id (also its session and process group id).</summary>
    public int Pid { get; }

    /// <summary>The slave's path, e.g. <c>/dev/pts/3</c>: what <c>tty</c> prints in the child.</summary>
    public string SlavePath { get; }

    /// <summary>The master's file descriptor.</summary>
    internal int MasterFd => _master;

    /// <summary>Completes when the child has ended (it is reaped by then).</summary>
    public Task<TerminalExit> Exited => _exitTask;

    /// <summary>Starts <paramref name="info"/> under a new pseudo-terminal of its size.</summary>
    public static PtyProcess Start(PtyStartInfo info)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("pseudo-terminals are supported on Linux only");
        }
        var (master, slavePath) = PtyNative.OpenPty();
        try
        {
            PtyNative.SetWindowSize(master, info.Cols, info.Rows);
            // The slave stays open here until the child has its own: modes are set on it, and it never hangs up in between.
            var slave = PtyNative.OpenNoCtty(slavePath);
            try
            {
                if (info.CopyModesFrom is { } from && PtyNative.IsTerminal(from))
                {
                    PtyNative.SetAttributesNow(slave, PtyNative.GetAttributes(from));
                }
                var pid = PtyNative.SpawnOnTerminal(slavePath, info.File, [info.File, .. info.Arguments], EnvironmentOf(info), info.WorkingDirectory);
                return new PtyProcess(master, slavePath, pid);
            }
            finally
            {
                PtyNative.Close(slave);
            }
        }
        catch
        {
            PtyNative.Close(master);
            throw;
        }
    }

    /// <summary>
    /// Reads the child's output: the count (&gt; 0), 0 when nothing came within <paramref name="timeoutMs"/>, −1 when
    /// the terminal has hung up (every process holding the slave has closed it) and nothing more will come.
    /// </summary>
    public int Read(Span<byte> buffer, int timeoutMs)
    {
        var n = PtyNative.Read(_master, buffer);
        if (n != 0)
        {
            return n;
        }
        PtyNative.WaitReadable(_master, timeoutMs);
        return PtyNative.Read(_master, buffer);
    }

    /// <summary>
    /// Writes input for the child: the count taken (0 when the terminal's input queue stayed full for
    /// <paramref name="timeoutMs"/>); throws <see cref="IOException"/> when the terminal is gone.
    /// </summary>
    public int Write(ReadOnlySpan<byte> data, int timeoutMs)
    {
        var n = PtyNative.Write(_master, data);
        if (n != 0)
        {
            return n;
        }
        PtyNative.WaitWritable(_master, timeoutMs);
        return PtyNative.Write(_master, data);
    }

    /// <summary>Sets the terminal's size; the kernel sends SIGWINCH to the foreground process group.</summary>
    public void Resize(int cols, int rows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cols, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cols, ushort.MaxValue);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, ushort.MaxValue);
        PtyNative.SetWindowSize(_master, cols, rows);
    }

    /// <summary>The terminal's current size.</summary>
    public (int Cols, int Rows) Size => PtyNative.GetWindowSize(_master) ?? (0, 0);

    /// <summary>Sends <paramref name="signal"/> to the child's process group (its whole job); false when it is gone.</summary>
    public bool Signal(int signal) => !_exitTask.IsCompleted && PtyNative.Kill(-Pid, signal);

    /// <summary>Waits for the child to end.</summary>
    public Task<TerminalExit> WaitForExitAsync(CancellationToken cancellationToken = default) => _exitTask.WaitAsync(cancellationToken);

    /// <summary>The exit, blocking until there is one.</summary>
    internal TerminalExit WaitForExit() => _exitTask.GetAwaiter().GetResult();

    /// <summary>Closes the master (the session gets SIGHUP if it still runs). Does not wait for the child.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            PtyNative.Close(_master);
        }
    }

    private static List<string> EnvironmentOf(PtyStartInfo info)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        if (info.Environment is { } given)
        {
            foreach (var (k, v) in given)
            {
                env[k] = v;
            }
        }
        else
        {
            foreach (DictionaryEntry e in System.Environment.GetEnvironmentVariables())
            {
                env[(string)e.Key] = (string?)e.Value ?? "";
            }
            env.TryAdd("TERM", "xterm-256color");
        }
        if (info.ExtraEnvironment is { } extra)
        {
            foreach (var (k, v) in extra)
            {
                env[k] = v;
            }
        }
        return env.Select(p => $"{p.Key}={p.Value}").ToList();
    }
}
