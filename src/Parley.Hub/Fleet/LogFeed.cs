namespace Parley.Hub.Fleet;

/// <summary>One line of an instance's log: its place in the feed (1, 2, 3… since the hub started) and the stored text.</summary>
public readonly record struct LogLine(long Seq, string Text);

/// <summary>
/// An instance's log as a live feed (docs/protocol.md §15, log tails): the newest
/// <see cref="MaxBacklog"/> lines in memory (loaded from <c>output.log</c> on first use, so a restarted hub
/// still has a backlog), and watchers that get a backlog, then every new line batched in
/// <see cref="BatchWindow"/>, then <c>rotated</c> when the file rotates. Watchers' callbacks run under the
/// feed's lock, in order, and must not block (they queue a frame).
/// </summary>
public sealed class LogFeed : IDisposable
{
    /// <summary>Most backlog lines a watcher may ask for.</summary>
    public const int MaxBacklog = 1000;

    /// <summary>How long new lines are gathered before watchers hear them, so a burst is one frame.</summary>
    public static readonly TimeSpan BatchWindow = TimeSpan.FromMilliseconds(100);

    private readonly Lock _lock = new();
    private readonly Queue<LogLine> _recent = new();
    private readonly List<Watcher> _watchers = [];
    private readonly string _path;
    private readonly ITimer _timer;
    private List<LogLine> _pending = [];
    private bool _loaded;
    private bool _armed;
    private long _nextSeq = 1;

    private sealed class Watcher(Action<IReadOnlyList<LogLine>> onLines, Action onRotated)
    {
        public Action<IReadOnlyList<LogLine>> OnLines { get; } = onLines;
        public Action OnRotated { get; } = onRotated;
    }

    /// <param name="path">The log file, read once for the first backlog.</param>
    public LogFeed(string path, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(time);
        _path = path;
        _timer = time.CreateTimer(static state => ((LogFeed)state!).Flush(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>A line was written (called by the log writer, in file order).</summary>
    public void Append(string text)
    {
        lock (_lock)
        {
            EnsureLoaded();
            var line = Remember(text);
            if (_watchers.Count == 0)
            {
                return;
            }
            _pending.Add(line);
            if (!_armed)
            {
                _armed = true;
                _timer.Change(BatchWindow, Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>The file was rotated or truncated: watchers get what was gathered, then <c>rotated</c>.</summary>
    public void Rotated()
    {
        lock (_lock)
        {
            FlushLocked();
            foreach (var watcher in _watchers)
            {
                watcher.OnRotated();
            }
        }
    }

    /// <summary>The newest <paramref name="count"/> lines (at most <see cref="MaxBacklog"/>), oldest first.</summary>
    public IReadOnlyList<LogLine> Tail(int count)
    {
        lock (_lock)
        {
            EnsureLoaded();
            return [.. _recent.Skip(Math.Max(0, _recent.Count - Math.Clamp(count, 0, MaxBacklog)))];
        }
    }

    /// <summary>
    /// Starts watching: <paramref name="onBacklog"/> gets the newest <paramref name="backlog"/> lines at once,
    /// then <paramref name="onLines"/> every later batch and <paramref name="onRotated"/> every rotation,
    /// nothing missed or repeated between them. Dispose the result to stop.
    /// </summary>
    public IDisposable Watch(int backlog, Action<IReadOnlyList<LogLine>> onBacklog, Action<IReadOnlyList<LogLine>> onLines, Action onRotated)
    {
        ArgumentNullException.ThrowIfNull(onBacklog);
        var watcher = new Watcher(onLines, onRotated);
        lock (_lock)
        {
            FlushLocked(); // lines gathered before this watcher belong to the others only
            onBacklog(Tail(backlog));
            _watchers.Add(watcher);
        }
        return new Unwatch(this, watcher);
    }

    private sealed class Unwatch(LogFeed feed, Watcher watcher) : IDisposable
    {
        public void Dispose()
        {
            lock (feed._lock)
            {
                feed._watchers.Remove(watcher);
            }
        }
    }

    private void Flush()
    {
        lock (_lock)
        {
            FlushLocked();
        }
    }

    private void FlushLocked()
    {
        _armed = false;
        if (_pending.Count == 0)
        {
            return;
        }
        var batch = _pending;
        _pending = [];
        foreach (var watcher in _watchers)
        {
            watcher.OnLines(batch);
        }
    }

    private LogLine Remember(string text)
    {
        var line = new LogLine(_nextSeq++, text);
        _recent.Enqueue(line);
        if (_recent.Count > MaxBacklog)
        {
            _recent.Dequeue();
        }
        return line;
    }

    // The newest lines of the file as it was when the hub started (once; the writer appends after).
    private void EnsureLoaded()
    {
        if (_loaded)
        {
            return;
        }
        _loaded = true;
        try
        {
            using var file = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(file);
            while (reader.ReadLine() is { } text)
            {
                Remember(text);
            }
        }
        catch (FileNotFoundException)
        {
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    public void Dispose() => _timer.Dispose();
}
