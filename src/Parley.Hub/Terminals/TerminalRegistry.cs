using System.Text.Json;
using Microsoft.Extensions.Logging;
using Parley.Hub.Auth;
using Parley.Terminal;
using Parley.Terminal.Recording;

namespace Parley.Hub.Terminals;

/// <summary>What changed in the registry (the <c>term:lobby</c> event names).</summary>
public static class TerminalEvents
{
    public const string Started = "session_started";
    public const string Updated = "session_updated";
    public const string Ended = "session_ended";
}

/// <summary>
/// Every terminal session the hub knows: live ones (listed on <c>term:lobby</c> and <c>GET /api/terminals</c>) and
/// the recordings of ended or abandoned ones under <c>&lt;data&gt;/terminals</c>. A session whose owner connection
/// has been gone for the owner grace is pruned from the listing (its owner may still come back and revive it).
/// Listing changes are announced under one gate, so a lobby snapshot taken there is exactly what precedes the
/// next event; updates go out at most once per <see cref="TerminalOptions.UpdateInterval"/> per session.
/// </summary>
public sealed class TerminalRegistry : IAsyncDisposable
{
    private readonly Dictionary<string, HubTerminal> _sessions = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly HubMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeSpan _ownerGrace;
    private readonly Timer _ticker;
    private long _lastTick;
    private long _lastSweep;

    public TerminalRegistry(TerminalOptions options, HubOptions hubOptions, string directory, HubMetrics metrics, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(hubOptions);
        ArgumentNullException.ThrowIfNull(metrics);
        options.Validate(hubOptions);
        Options = options;
        Directory = directory;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _ownerGrace = options.OwnerGrace ?? hubOptions.IdleTimeout;
        foreach (var recording in RecordingLocator.List(directory))
        {
            try
            {
                var terminal = HubTerminal.Load(recording, metrics, time);
                _sessions[terminal.Id] = terminal;
            }
            catch (Exception ex) when (ex is IOException or JsonException or InvalidDataException)
            {
                TerminalLog.LoadFailed(logger, recording.Prefix, ex);
            }
        }
        _lastTick = _lastSweep = time.GetTimestamp();
        _ticker = new Timer(static s => ((TerminalRegistry)s!).Tick(), this, options.UpdateInterval, options.UpdateInterval);
    }

    public TerminalOptions Options { get; }

    /// <summary>Where the hub's copies of sessions live.</summary>
    public string Directory { get; }

    /// <summary>Called under the gate for every listing change, in order.</summary>
    public event Action<string, HubTerminal>? Changed;

    /// <summary>Live sessions now.</summary>
    public int LiveCount
    {
        get
        {
            lock (_gate)
            {
                return _sessions.Values.Count(t => t.Live);
            }
        }
    }

    /// <summary>The session, live or not, if the hub knows it.</summary>
    public HubTerminal? Find(string id)
    {
        lock (_gate)
        {
            return _sessions.GetValueOrDefault(id);
        }
    }

    /// <summary>Live sessions (or every known one), newest first.</summary>
    public IReadOnlyList<HubTerminal> List(bool includeEnded = false)
    {
        lock (_gate)
        {
            return [.. _sessions.Values.Where(t => includeEnded || t.Live).OrderByDescending(t => t.StartedAt)];
        }
    }

    /// <summary>Runs <paramref name="read"/> with the live sessions under the gate (a lobby join's snapshot, ordered with the events).</summary>
    public T Read<T>(Func<IReadOnlyList<HubTerminal>, T> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        lock (_gate)
        {
            return read([.. _sessions.Values.Where(t => t.Live).OrderByDescending(t => t.StartedAt)]);
        }
    }

    /// <summary>
    /// An owner joins: a new session is created (with the caller as its owner), or an existing one taken up again
    /// by its owner. Returns the session and where the owner's streams continue; throws <see cref="TerminalException"/>.
    /// </summary>
    internal (HubTerminal Terminal, long Output, long Input, Channels.Subscriber? Replaced) AttachOwner(string id, ConnectionPrincipal principal, OwnerHello hello, Channels.Subscriber subscriber)
    {
        lock (_gate)
        {
            if (!_sessions.TryGetValue(id, out var terminal))
            {
                terminal = HubTerminal.Create(Directory, id, principal, hello, _metrics, _time);
                _sessions[id] = terminal;
            }
            else if (!terminal.IsOwner(principal))
            {
                throw new TerminalException(Protocol.ErrorReasons.Forbidden, $"session {id} belongs to {terminal.Owner}");
            }
            var (output, input, replaced) = terminal.AttachOwner(subscriber);
            if (!terminal.Live)
            {
                terminal.Live = true;
                Changed?.Invoke(TerminalEvents.Started, terminal);
            }
            return (terminal, output, input, replaced);
        }
    }

    /// <summary>
    /// Lists a session the hub runs itself (a fleet instance under a terminal; see <see cref="HubTerminal.CreateHosted"/>).
    /// <paramref name="session"/> must record into <see cref="Directory"/>. Call <see cref="End"/> when it ends.
    /// </summary>
    /// <param name="owner">The hub user it belongs to (a fleet instance's creator).</param>
    public HubTerminal Host(TerminalSession session, string owner)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (Path.GetFullPath(Path.GetDirectoryName(session.Prefix)!) != Path.TrimEndingDirectorySeparator(Path.GetFullPath(Directory)))
        {
            throw new ArgumentException($"a hosted session records into {Directory}", nameof(session));
        }
        lock (_gate)
        {
            var terminal = HubTerminal.CreateHosted(session, owner, _metrics, _time);
            _sessions.Add(terminal.Id, terminal);
            terminal.Live = true;
            Changed?.Invoke(TerminalEvents.Started, terminal);
            return terminal;
        }
    }

    /// <summary>The command ended (its owner said so, or the hosted session finished).</summary>
    public void End(HubTerminal terminal, int? exitCode, int? signal)
    {
        lock (_gate)
        {
            terminal.End(exitCode, signal);
            if (terminal.Live)
            {
                terminal.Live = false;
                Changed?.Invoke(TerminalEvents.Ended, terminal);
            }
        }
    }

    // Prunes sessions whose owner has been gone too long and sends the updates that are due.
    private void Tick()
    {
        try
        {
            var now = _time.GetTimestamp();
            var interval = _time.GetElapsedTime(_lastTick, now);
            _lastTick = now;
            var wallNow = _time.GetUtcNow();
            lock (_gate)
            {
                foreach (var terminal in _sessions.Values)
                {
                    terminal.Tick(interval);
                    if (!terminal.Live)
                    {
                        continue;
                    }
                    if (terminal.OwnerGoneAt is { } gone && wallNow - gone >= _ownerGrace)
                    {
                        terminal.Live = false;
                        TerminalLog.Pruned(_logger, terminal.Id, _ownerGrace.TotalSeconds);
                        Changed?.Invoke(TerminalEvents.Ended, terminal);
                    }
                    else if (terminal.Dirty)
                    {
                        terminal.Dirty = false;
                        Changed?.Invoke(TerminalEvents.Updated, terminal);
                    }
                }
            }
        }
        catch (Exception ex)
        {
            TerminalLog.TickFailed(_logger, ex);
        }
        if (_time.GetElapsedTime(_lastSweep) >= Options.SweepInterval)
        {
            _lastSweep = _time.GetTimestamp();
            try
            {
                Sweep();
            }
            catch (Exception ex)
            {
                TerminalLog.TickFailed(_logger, ex);
            }
        }
    }

    /// <summary>
    /// Deletes the recordings of sessions no longer listed once <see cref="TerminalOptions.RetainEnded"/> has passed,
    /// then the oldest of them while their recordings take more than <see cref="TerminalOptions.MaxRecordingBytes"/>.
    /// Live sessions are never touched nor counted. Returns the ids deleted.
    /// </summary>
    internal IReadOnlyList<string> Sweep()
    {
        var now = _time.GetUtcNow();
        var doomed = new List<(HubTerminal Terminal, string Reason)>();
        lock (_gate)
        {
            // Live recordings are not counted: a busy live session must not cost every ended one its recording.
            var ended = _sessions.Values.Where(t => !t.Live).OrderBy(t => t.EndedAt ?? t.LastActivity).ToList();
            var sizes = ended.ToDictionary(t => t, t => RecordingFiles.SizeOf(t.Prefix));
            var total = sizes.Values.Sum();
            foreach (var terminal in ended)
            {
                var age = now - (terminal.EndedAt ?? terminal.LastActivity);
                if (age >= Options.RetainEnded)
                {
                    doomed.Add((terminal, $"no longer listed for {age.TotalHours:0.#} h (terminals.RetainEnded {Options.RetainEnded})"));
                }
                else if (total > Options.MaxRecordingBytes)
                {
                    doomed.Add((terminal, $"recordings took {total} bytes (terminals.MaxRecordingBytes {Options.MaxRecordingBytes})"));
                }
                else
                {
                    continue;
                }
                total -= sizes[terminal];
                _sessions.Remove(terminal.Id);
            }
        }
        foreach (var (terminal, reason) in doomed)
        {
            terminal.CloseFiles();
            try
            {
                RecordingFiles.Delete(terminal.Prefix);
                TerminalLog.Deleted(_logger, terminal.Id, reason);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                TerminalLog.DeleteFailed(_logger, terminal.Prefix, ex);
            }
        }
        return [.. doomed.Select(d => d.Terminal.Id)];
    }

    public async ValueTask DisposeAsync()
    {
        await _ticker.DisposeAsync();
        lock (_gate)
        {
            foreach (var terminal in _sessions.Values)
            {
                terminal.CloseFiles();
            }
        }
    }
}

internal static partial class TerminalLog
{
    [LoggerMessage(901, LogLevel.Warning, "Terminal recording {Prefix} could not be loaded")]
    public static partial void LoadFailed(ILogger logger, string prefix, Exception exception);

    [LoggerMessage(902, LogLevel.Information, "Terminal session {Id} pruned: its owner has been gone for {Seconds} s")]
    public static partial void Pruned(ILogger logger, string id, double seconds);

    [LoggerMessage(903, LogLevel.Error, "The terminal registry's update tick failed")]
    public static partial void TickFailed(ILogger logger, Exception exception);

    [LoggerMessage(904, LogLevel.Information, "Terminal recording {Id} deleted: {Reason}")]
    public static partial void Deleted(ILogger logger, string id, string reason);

    [LoggerMessage(905, LogLevel.Warning, "Terminal recording {Prefix} could not be deleted")]
    public static partial void DeleteFailed(ILogger logger, string prefix, Exception exception);
}
