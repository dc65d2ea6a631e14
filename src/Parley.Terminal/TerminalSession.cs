using System.Collections.Concurrent;
using System.Diagnostics;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Terminal;

/// <summary>
/// Someone who follows a <see cref="TerminalSession"/> live. Calls come from the session's threads, one at a time
/// per stream and in offset order, under the stream's lock: an observer MUST NOT block (queue the bytes and return;
/// a blocked observer stalls the command). The spans are only valid during the call. An observer that throws is
/// removed.
/// </summary>
public interface ITerminalObserver
{
    /// <summary>Output bytes <paramref name="data"/> at <paramref name="offset"/> in <c>.output</c> (already in the file).</summary>
    void OnOutput(long offset, ReadOnlySpan<byte> data);

    /// <summary>Input bytes at <paramref name="offset"/> in <c>.input</c>, from any source, in the order they reach the terminal.</summary>
    void OnInput(long offset, ReadOnlySpan<byte> data);

    /// <summary>The terminal's size changed, <paramref name="timeUs"/> µs after the start.</summary>
    void OnResize(long timeUs, int cols, int rows);

    /// <summary>The command ended and its output is all delivered; nothing follows.</summary>
    void OnExit(TerminalExit exit);
}

/// <summary>
/// Where a subscriber starts: every output byte before <see cref="OutputOffset"/> (and input byte before
/// <see cref="InputOffset"/>) is in the recording files, every later one comes to the observer.
/// Dispose to unsubscribe.
/// </summary>
public sealed class TerminalSubscription : IDisposable
{
    private readonly TerminalSession _session;
    private readonly ITerminalObserver _observer;

    internal TerminalSubscription(TerminalSession session, ITerminalObserver observer, long outputOffset, long inputOffset, int cols, int rows, TerminalExit? exit)
    {
        _session = session;
        _observer = observer;
        OutputOffset = outputOffset;
        InputOffset = inputOffset;
        Cols = cols;
        Rows = rows;
        Exit = exit;
    }

    public long OutputOffset { get; }
    public long InputOffset { get; }
    public int Cols { get; }
    public int Rows { get; }

    /// <summary>Non-null when the session had already ended: no call will come.</summary>
    public TerminalExit? Exit { get; }

    public void Dispose() => _session.Unsubscribe(_observer);
}

/// <summary>
/// The recording could not be created or written (the directory is not writable, the disk is full, a file size limit…).
/// The command is not left running: viewers, <c>fetch_output</c> and the hub's copy all read the recording.
/// </summary>
public sealed class RecordingUnavailableException(string message, Exception inner) : IOException(message, inner);

/// <summary>What <see cref="TerminalSession.Start"/> runs and where it records.</summary>
public sealed class TerminalSessionOptions
{
    /// <summary>The program and its arguments (at least the program).</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>The directory the recording goes into (created 0700 when missing).</summary>
    public required string RecordingDirectory { get; init; }

    /// <summary>The session id; null picks a new one (<see cref="RecordingFiles.NewId"/>).</summary>
    public string? Id { get; init; }

    /// <summary>A human label; null means the command's basename.</summary>
    public string? Name { get; init; }

    /// <summary>Working directory; null means this process's.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Initial size (default 80×24).</summary>
    public int Cols { get; init; } = 80;

    /// <inheritdoc cref="Cols"/>
    public int Rows { get; init; } = 24;

    /// <summary>A terminal fd whose modes the new terminal copies; null keeps the kernel's defaults.</summary>
    public int? CopyModesFrom { get; init; }

    /// <summary>Recorded in the meta: whether remote viewers may type (the session itself takes input from anyone who calls <see cref="TerminalSession.WriteInput"/>).</summary>
    public bool AllowInput { get; init; }

    /// <summary>
    /// The local terminal: called with each output chunk after it is recorded and observed, outside every lock,
    /// on the read loop. It may block — that paces the command, as a slow terminal would without Parley.
    /// </summary>
    public Action<ReadOnlySpan<byte>>? LocalOutput { get; init; }

    /// <summary>Recorded in the meta: the hub user who owns the session (a hub running it itself); null for a local run.</summary>
    public string? Owner { get; init; }

    /// <summary>Recorded in the meta: the fleet instance this is a run of; null otherwise.</summary>
    public string? Instance { get; init; }

    /// <summary>Extra environment variables for the command (<c>PARLEY_TERM_SESSION</c> is always set to the id).</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }
}

/// <summary>
/// A command running under a pseudo-terminal, recorded as it runs (docs/terminal-recordings.md). One thread reads
/// the terminal (64 KiB at a time) and, per chunk, appends it to <c>.output</c>, tells the observers, then the
/// local output; one thread writes input to the terminal in the order <see cref="WriteInput"/> recorded it.
/// </summary>
public sealed class TerminalSession : IDisposable
{
    private const int ReadBufferBytes = 64 * 1024;
    // After the command ends, output still queued is drained until the terminal is silent this long (or hangs up).
    private const int DrainSilenceMs = 100;
    private const long DrainLimitMs = 2000;

    private readonly PtyProcess _pty;
    private readonly RecordingWriter _writer;
    private readonly Stopwatch _clock;
    private readonly Action<ReadOnlySpan<byte>>? _localOutput;
    private readonly Lock _outputLock = new();
    private readonly Lock _inputLock = new();
    private readonly BlockingCollection<byte[]> _pending = new();
    private readonly TaskCompletionSource<TerminalExit> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ITerminalObserver[] _observers = [];
    private Thread? _writerThread;
    private volatile bool _stopWriting;
    private TerminalExit? _exit;
    private RecordingUnavailableException? _recordingFailure;
    private int _cols;
    private int _rows;

    private TerminalSession(PtyProcess pty, RecordingWriter writer, Stopwatch clock, TerminalSessionOptions options)
    {
        _pty = pty;
        _writer = writer;
        _clock = clock;
        _localOutput = options.LocalOutput;
        _cols = options.Cols;
        _rows = options.Rows;
        Id = writer.Meta.Id;
    }

    /// <summary>The session id (also the recording's file name and, for a hub, the topic suffix of <c>term:&lt;id&gt;</c>).</summary>
    public string Id { get; }

    /// <summary>The recording's path prefix.</summary>
    public string Prefix => _writer.Prefix;

    /// <summary>The command's process id.</summary>
    public int Pid => _pty.Pid;

    /// <summary>The meta as it is now (a copy).</summary>
    public RecordingMeta Meta => _writer.Meta;

    /// <summary>The current size.</summary>
    public (int Cols, int Rows) Size
    {
        get
        {
            lock (_outputLock)
            {
                return (_cols, _rows);
            }
        }
    }

    /// <summary>Output bytes so far.</summary>
    public long OutputLength => _writer.OutputLength;

    /// <summary>Input bytes so far.</summary>
    public long InputLength => _writer.InputLength;

    /// <summary>
    /// Completes when the command has ended, its output is recorded and delivered, <see cref="ITerminalObserver.OnExit"/>
    /// was called and the recording is closed.
    /// </summary>
    public Task<TerminalExit> Completion => _completion.Task;

    /// <summary>Starts the command and its recording; <paramref name="observer"/>, when given, sees everything from offset 0.</summary>
    public static TerminalSession Start(TerminalSessionOptions options, ITerminalObserver? observer = null)
    {
        if (options.Command.Count == 0)
        {
            throw new ArgumentException("a command is needed", nameof(options));
        }
        var startedAt = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var id = options.Id ?? RecordingFiles.NewId(startedAt);
        var cwd = options.WorkingDirectory ?? Environment.CurrentDirectory;
        var meta = new RecordingMeta
        {
            Id = id,
            Name = options.Name ?? Path.GetFileName(options.Command[0]),
            Command = [.. options.Command],
            Cwd = cwd,
            StartedAt = startedAt,
            Cols = options.Cols,
            Rows = options.Rows,
            AllowInput = options.AllowInput,
            Owner = options.Owner,
            Instance = options.Instance,
        };
        var environment = new Dictionary<string, string>(options.Environment ?? new Dictionary<string, string>(), StringComparer.Ordinal)
        {
            ["PARLEY_TERM_SESSION"] = id,
        };
        var pty = PtyProcess.Start(new PtyStartInfo
        {
            File = options.Command[0],
            Arguments = options.Command.Skip(1).ToList(),
            WorkingDirectory = cwd,
            Cols = options.Cols,
            Rows = options.Rows,
            CopyModesFrom = options.CopyModesFrom,
            ExtraEnvironment = environment,
        });
        RecordingWriter writer;
        try
        {
            meta.Pid = pty.Pid;
            writer = RecordingWriter.Create(options.RecordingDirectory, meta);
        }
        catch (Exception e)
        {
            pty.Signal(SignalNumbers.Kill);
            pty.Dispose();
            if (e is IOException or UnauthorizedAccessException)
            {
                throw new RecordingUnavailableException($"cannot record into {options.RecordingDirectory}: {e.Message}", e);
            }
            throw;
        }
        var session = new TerminalSession(pty, writer, clock, options);
        if (observer is not null)
        {
            session._observers = [observer];
        }
        // The writer thread starts first: a command that ends at once has the read loop join it (CloseTerminal),
        // and joining a thread not yet started throws.
        session._writerThread = new Thread(session.WriteLoop) { IsBackground = true, Name = "pty-write " + id };
        session._writerThread.Start();
        new Thread(session.ReadLoop) { IsBackground = true, Name = "pty-read " + id }.Start();
        return session;
    }

    /// <summary>Adds an observer; see <see cref="TerminalSubscription"/> for where it starts.</summary>
    public TerminalSubscription Subscribe(ITerminalObserver observer)
    {
        lock (_outputLock)
        {
            lock (_inputLock)
            {
                if (_exit is null)
                {
                    _observers = [.. _observers, observer];
                }
                return new TerminalSubscription(this, observer, _writer.OutputLength, _writer.InputLength, _cols, _rows, _exit);
            }
        }
    }

    internal void Unsubscribe(ITerminalObserver observer)
    {
        lock (_outputLock)
        {
            lock (_inputLock)
            {
                _observers = _observers.Where(o => !ReferenceEquals(o, observer)).ToArray();
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="data"/> to the command as typed input, from the local keyboard or a viewer: it is recorded
    /// in <c>.input</c> and observed now, and written to the terminal in that order by the writer thread (never blocks
    /// on the terminal). False, recording nothing, once the command has ended.
    /// </summary>
    public bool WriteInput(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return _exit is null;
        }
        lock (_inputLock)
        {
            if (_exit is not null || _pending.IsAddingCompleted)
            {
                return false;
            }
            long offset;
            try
            {
                offset = _writer.AppendInput(data, Now());
            }
            catch (RecordingUnavailableException e)
            {
                FailRecording(e);
                return false;
            }
            NotifyBytes(static (o, at, bytes) => o.OnInput(at, bytes), offset, data);
            _pending.Add(data.ToArray());
            return true;
        }
    }

    /// <summary>Resizes the terminal (the command gets SIGWINCH) and records the change; the same size again does nothing.</summary>
    public void Resize(int cols, int rows)
    {
        lock (_outputLock)
        {
            if (_exit is not null || (cols == _cols && rows == _rows))
            {
                return;
            }
            _pty.Resize(cols, rows);
            _cols = cols;
            _rows = rows;
            var t = Now();
            try
            {
                _writer.AddResize(t, cols, rows);
            }
            catch (RecordingUnavailableException e)
            {
                FailRecording(e);
                return;
            }
            Notify(o => o.OnResize(t, cols, rows));
        }
    }

    /// <summary>Sends <paramref name="signal"/> to the command's process group; false when it has ended.</summary>
    public bool Signal(int signal) => _pty.Signal(signal);

    // The recording cannot go on, so neither can the command; Completion then fails with the reason.
    private void FailRecording(RecordingUnavailableException e)
    {
        Interlocked.CompareExchange(ref _recordingFailure, e, null);
        _pty.Signal(SignalNumbers.Kill);
    }

    /// <summary>Kills the command (SIGKILL to its group) if it still runs; <see cref="Completion"/> follows.</summary>
    public void Dispose() => _pty.Signal(SignalNumbers.Kill);

    private long Now() => _clock.Elapsed.Ticks / 10;

    private delegate void BytesCall(ITerminalObserver observer, long offset, ReadOnlySpan<byte> data);

    private void Notify(Action<ITerminalObserver> call)
    {
        foreach (var observer in _observers)
        {
            try
            {
                call(observer);
            }
            catch (Exception)
            {
                Drop(observer);
            }
        }
    }

    private void NotifyBytes(BytesCall call, long offset, ReadOnlySpan<byte> data)
    {
        foreach (var observer in _observers)
        {
            try
            {
                call(observer, offset, data);
            }
            catch (Exception)
            {
                Drop(observer);
            }
        }
    }

    private void Drop(ITerminalObserver observer) => _observers = _observers.Where(o => !ReferenceEquals(o, observer)).ToArray();

    private void ReadLoop()
    {
        var buffer = new byte[ReadBufferBytes];
        long? exitedAt = null;
        try
        {
            while (true)
            {
                var n = _pty.Read(buffer, DrainSilenceMs);
                if (n < 0)
                {
                    break;
                }
                if (n == 0)
                {
                    if (_pty.Exited.IsCompleted)
                    {
                        // The command is gone and the terminal stayed silent (something it left behind holds the slave).
                        break;
                    }
                    continue;
                }
                var chunk = new ReadOnlySpan<byte>(buffer, 0, n);
                lock (_outputLock)
                {
                    var offset = _writer.AppendOutput(chunk, Now());
                    NotifyBytes(static (o, at, bytes) => o.OnOutput(at, bytes), offset, chunk);
                }
                _localOutput?.Invoke(chunk);
                if (_pty.Exited.IsCompleted)
                {
                    exitedAt ??= Environment.TickCount64;
                    if (Environment.TickCount64 - exitedAt > DrainLimitMs)
                    {
                        break;
                    }
                }
            }
            var exit = _pty.WaitForExit();
            if (Volatile.Read(ref _recordingFailure) is { } failure)
            {
                throw failure;
            }
            Finish(exit);
        }
        catch (Exception e)
        {
            _pty.Signal(SignalNumbers.Kill);
            lock (_inputLock)
            {
                _pending.CompleteAdding();
            }
            _writer.Dispose();
            CloseTerminal();
            _completion.TrySetException(e);
        }
    }

    private void Finish(TerminalExit exit)
    {
        lock (_outputLock)
        {
            lock (_inputLock)
            {
                _exit = exit;
                _pending.CompleteAdding();
                _writer.Complete(exit, Now());
                Notify(o => o.OnExit(exit));
                _observers = [];
            }
        }
        CloseTerminal();
        _completion.TrySetResult(exit);
    }

    // The master is closed only once the writer thread is done with it: a closed fd number can be reused at once.
    private void CloseTerminal()
    {
        _stopWriting = true;
        _writerThread?.Join();
        _pty.Dispose();
    }

    private void WriteLoop()
    {
        try
        {
            foreach (var chunk in _pending.GetConsumingEnumerable())
            {
                if (_stopWriting)
                {
                    break;
                }
                var data = chunk.AsMemory();
                while (!data.IsEmpty && !_stopWriting)
                {
                    data = data[_pty.Write(data.Span, 200)..];
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The terminal is gone: input still queued has nowhere to go.
        }
    }
}
