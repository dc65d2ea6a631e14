using Microsoft.Extensions.Logging;
using Parley.Hub.State;
using Parley.Hub.Terminals;

namespace Parley.Hub.Fleet;

/// <summary>Who asks for a fleet operation: only admins run lifecycle operations.</summary>
public readonly record struct FleetActor(string Name, bool IsAdmin);

/// <summary>A change watchers hear about (docs/protocol.md §15): an event name, the instance after the change, and when (Unix ms).</summary>
public sealed record FleetEvent(string Kind, InstanceView Instance, long TimestampMs)
{
    /// <summary>The instance's status or process details changed.</summary>
    public const string StatusChanged = "status_changed";

    /// <summary>A new instance (created or cloned).</summary>
    public const string Created = "instance_created";

    /// <summary>The instance was archived (and is being stopped).</summary>
    public const string Archived = "instance_archived";

    /// <summary>The instance was unarchived.</summary>
    public const string Unarchived = "instance_unarchived";

    /// <summary>The instance was deleted.</summary>
    public const string Deleted = "instance_deleted";
}

/// <summary>
/// The fleet (docs/fleet.md): named commands the hub runs and watches. Holds every instance's record and
/// runtime state in memory, writes intent through <see cref="IInstanceStore"/> and supervises each process
/// with its own runner. Every change is applied and announced (<see cref="Changed"/>) under one gate, and
/// <see cref="ReadAsync{T}"/> reads under the same gate, so a snapshot taken there is exactly what precedes the
/// next event. Operations on one instance are serialised by a gate per name (held across the process work,
/// which never takes the fleet gate for longer than one announcement).
/// </summary>
public sealed class FleetService : IAsyncDisposable
{
    private readonly IInstanceStore _store;
    private readonly FleetOptions _options;
    private readonly string _directory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TerminalRegistry? _terminals;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly NamespaceGates _operations = new();
    private readonly Dictionary<string, Entry> _instances = new(StringComparer.Ordinal);
    private bool _disposed;

    /// <param name="directory">Where instance directories live (<c>&lt;data dir&gt;/fleet</c>); created if missing.</param>
    /// <param name="terminals">Where instances with <c>terminal: true</c> are hosted as terminal sessions; null: such instances cannot start.</param>
    public FleetService(IInstanceStore store, FleetOptions options, string directory, TimeProvider time, ILogger logger, TerminalRegistry? terminals = null)
    {
        _terminals = terminals;
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(directory);
        options.Validate();
        _store = store;
        _options = options;
        _directory = directory;
        _time = time ?? TimeProvider.System;
        _logger = logger;
        Directory.CreateDirectory(directory);
    }

    /// <summary>Raised under the fleet gate for every change, in order. Handlers must not block or call back into the service.</summary>
    public event Action<FleetEvent>? Changed;

    private sealed class Entry(InstanceRecord record, InstanceRunner runner)
    {
        public InstanceRecord Record { get; set; } = record;
        public InstanceRunner Runner { get; } = runner;
        public InstanceRuntime Runtime { get; set; } = InstanceRuntime.Initial;
        public InstanceView View => new(Record, Runtime);
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>
    /// Loads every instance, kills processes a previous hub left running (see <see cref="InstanceRunner.KillOrphan"/>),
    /// and starts those whose desired state is running (and that are not archived).
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var records = await _store.ListAsync(cancellationToken);
        var starting = new List<Entry>();
        await _gate.WaitAsync(cancellationToken);
        try
        {
            foreach (var record in records)
            {
                var entry = NewEntry(record);
                _instances[record.Name] = entry;
                if (record.DesiredRunning && !record.Archived)
                {
                    starting.Add(entry);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
        foreach (var entry in _instances.Values)
        {
            if (entry.Runner.KillOrphan() is { } pid)
            {
                FleetLog.OrphanKilled(_logger, entry.Record.Name, pid);
            }
        }
        await Task.WhenAll(starting.Select(e => e.Runner.StartAsync(e.Record.Spec)));
    }

    /// <summary>Runs <paramref name="read"/> on every instance (ordered by name) under the fleet gate: no change is announced meanwhile.</summary>
    public async ValueTask<T> ReadAsync<T>(Func<IReadOnlyList<InstanceView>, T> read, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(read);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            return read([.. _instances.Values.Select(e => e.View).OrderBy(v => v.Name, StringComparer.Ordinal)]);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Every instance, ordered by name; archived ones only when <paramref name="includeArchived"/>.</summary>
    public ValueTask<IReadOnlyList<InstanceView>> ListAsync(bool includeArchived, CancellationToken cancellationToken = default) =>
        ReadAsync<IReadOnlyList<InstanceView>>(all => [.. all.Where(v => includeArchived || !v.Record.Archived)], cancellationToken);

    /// <summary>The instance named <paramref name="name"/>; <c>instance_not_found</c> otherwise.</summary>
    public async ValueTask<InstanceView> GetAsync(string name, CancellationToken cancellationToken = default) =>
        (await EntryAsync(name, cancellationToken)).View;

    /// <summary>The log file of <paramref name="name"/> (<c>&lt;data dir&gt;/fleet/&lt;name&gt;/output.log</c>); the instance must exist.</summary>
    public async ValueTask<string> LogPathAsync(string name, CancellationToken cancellationToken = default) =>
        (await EntryAsync(name, cancellationToken)).Runner.LogPath;

    /// <summary>The live log feed of <paramref name="name"/>; <c>instance_not_found</c> otherwise.</summary>
    public async ValueTask<LogFeed> LogFeedAsync(string name, CancellationToken cancellationToken = default) =>
        (await EntryAsync(name, cancellationToken)).Runner.LogFeed;

    /// <summary>Creates a stopped instance (started at once when <paramref name="start"/>).</summary>
    public async Task<InstanceView> CreateAsync(FleetActor actor, string name, InstanceSpec spec, bool start = false, CancellationToken cancellationToken = default)
    {
        RequireAdmin(actor);
        CheckName(name, "name");
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Check() is { } problem)
        {
            throw new FleetException(FleetErrors.InvalidInstance, $"{problem.Field}: {problem.Message}");
        }
        return await WithOperationAsync(name, async () =>
        {
            var now = Now;
            var record = new InstanceRecord(name, spec, DesiredRunning: false, ArchivedAtMs: null, actor.Name, now, now);
            if (!await _store.CreateAsync(record, cancellationToken))
            {
                throw new FleetException(FleetErrors.Exists, $"an instance named {name} exists");
            }
            var entry = NewEntry(record);
            await AnnounceAsync(FleetEvent.Created, () =>
            {
                _instances[name] = entry;
                return entry;
            });
            FleetLog.Operation(_logger, "create", name, actor.Name);
            if (start)
            {
                await StartCoreAsync(entry, cancellationToken);
            }
            return entry.View;
        });
    }

    /// <summary>Creates <paramref name="newName"/> with the spec of <paramref name="name"/>, stopped and not archived.</summary>
    public async Task<InstanceView> CloneAsync(FleetActor actor, string name, string newName, CancellationToken cancellationToken = default)
    {
        RequireAdmin(actor);
        CheckName(newName, "name");
        var source = await EntryAsync(name, cancellationToken);
        return await CreateAsync(actor, newName, source.Record.Spec, start: false, cancellationToken);
    }

    /// <summary>Marks the instance running and starts its process (an archived instance is refused: <c>instance_archived</c>).</summary>
    public Task<InstanceView> StartInstanceAsync(FleetActor actor, string name, CancellationToken cancellationToken = default) =>
        Operate(actor, "start", name, cancellationToken: cancellationToken, operation: entry => StartCoreAsync(entry, cancellationToken));

    /// <summary>Marks the instance stopped and stops its process: SIGTERM, then SIGKILL after <see cref="FleetOptions.StopGracePeriod"/>.</summary>
    public Task<InstanceView> StopInstanceAsync(FleetActor actor, string name, CancellationToken cancellationToken = default) =>
        Operate(actor, "stop", name, cancellationToken: cancellationToken, operation: async entry =>
        {
            await SetDesiredAsync(entry, running: false, cancellationToken);
            await entry.Runner.StopAsync();
        });

    /// <summary>Stops the process if it runs, then starts it again (marked running).</summary>
    public Task<InstanceView> RestartInstanceAsync(FleetActor actor, string name, CancellationToken cancellationToken = default) =>
        Operate(actor, "restart", name, cancellationToken: cancellationToken, operation: async entry =>
        {
            RequireNotArchived(entry);
            await SetDesiredAsync(entry, running: true, cancellationToken);
            await entry.Runner.RestartAsync(entry.Record.Spec);
        });

    /// <summary>Archives the instance: marks it stopped, hides it from default snapshots, then stops its process. Archiving twice is a no-op.</summary>
    public Task<InstanceView> ArchiveAsync(FleetActor actor, string name, CancellationToken cancellationToken = default) =>
        Operate(actor, "archive", name, cancellationToken: cancellationToken, operation: async entry =>
        {
            if (entry.Record.Archived)
            {
                return;
            }
            var record = entry.Record with { ArchivedAtMs = Now, DesiredRunning = false, UpdatedAtMs = Now };
            await SaveAsync(record, cancellationToken);
            await AnnounceAsync(FleetEvent.Archived, () =>
            {
                entry.Record = record;
                return entry;
            });
            await entry.Runner.StopAsync();
        });

    /// <summary>Unarchives the instance (it stays stopped). Unarchiving one that is not archived is a no-op.</summary>
    public Task<InstanceView> UnarchiveAsync(FleetActor actor, string name, CancellationToken cancellationToken = default) =>
        Operate(actor, "unarchive", name, cancellationToken: cancellationToken, operation: async entry =>
        {
            if (!entry.Record.Archived)
            {
                return;
            }
            var record = entry.Record with { ArchivedAtMs = null, UpdatedAtMs = Now };
            await SaveAsync(record, cancellationToken);
            await AnnounceAsync(FleetEvent.Unarchived, () =>
            {
                entry.Record = record;
                return entry;
            });
        });

    /// <summary>Deletes a stopped instance (<c>instance_running</c> while it runs or waits to restart). Its log directory stays.</summary>
    public async Task<InstanceView> DeleteAsync(FleetActor actor, string name, CancellationToken cancellationToken = default)
    {
        RequireAdmin(actor);
        return await WithOperationAsync(name, async () =>
        {
            var entry = await EntryAsync(name, cancellationToken);
            if (InstanceStatus.IsActive(entry.Runtime.Status))
            {
                throw new FleetException(FleetErrors.Running, $"{name} is {entry.Runtime.Status}: stop it first");
            }
            await _store.DeleteAsync(name, cancellationToken);
            var view = await AnnounceAsync(FleetEvent.Deleted, () =>
            {
                _instances.Remove(name);
                return entry;
            });
            FleetLog.Operation(_logger, "delete", name, actor.Name);
            await entry.Runner.DisposeAsync();
            return view!;
        });
    }

    private async Task<InstanceView> Operate(FleetActor actor, string action, string name, Func<Entry, Task> operation, CancellationToken cancellationToken)
    {
        RequireAdmin(actor);
        return await WithOperationAsync(name, async () =>
        {
            var entry = await EntryAsync(name, cancellationToken);
            FleetLog.Operation(_logger, action, name, actor.Name);
            await operation(entry);
            return (await EntryAsync(name, cancellationToken)).View;
        });
    }

    private async Task StartCoreAsync(Entry entry, CancellationToken cancellationToken)
    {
        RequireNotArchived(entry);
        await SetDesiredAsync(entry, running: true, cancellationToken);
        await entry.Runner.StartAsync(entry.Record.Spec);
    }

    private static void RequireNotArchived(Entry entry)
    {
        if (entry.Record.Archived)
        {
            throw new FleetException(FleetErrors.Archived, $"{entry.Record.Name} is archived: unarchive it first");
        }
    }

    private async Task SetDesiredAsync(Entry entry, bool running, CancellationToken cancellationToken)
    {
        if (entry.Record.DesiredRunning == running)
        {
            return;
        }
        var record = entry.Record with { DesiredRunning = running, UpdatedAtMs = Now };
        await SaveAsync(record, cancellationToken);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            entry.Record = record;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task SaveAsync(InstanceRecord record, CancellationToken cancellationToken)
    {
        if (!await _store.UpdateAsync(record, cancellationToken))
        {
            throw new FleetException(FleetErrors.NotFound, $"no instance named {record.Name}");
        }
    }

    private async Task<T> WithOperationAsync<T>(string name, Func<Task<T>> operation)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var gate = _operations.For(name);
        await gate.WaitAsync();
        try
        {
            return await operation();
        }
        finally
        {
            gate.Release();
        }
    }

    private async ValueTask<Entry> EntryAsync(string name, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            return _instances.TryGetValue(name, out var entry) ? entry : throw new FleetException(FleetErrors.NotFound, $"no instance named {name}");
        }
        finally
        {
            _gate.Release();
        }
    }

    // Applies a change and announces it, both under the fleet gate.
    // A null from apply means nothing to announce (a runner of an instance deleted meanwhile).
    private async Task<InstanceView?> AnnounceAsync(string kind, Func<Entry?> apply)
    {
        await _gate.WaitAsync();
        try
        {
            if (apply()?.View is not { } view)
            {
                return null;
            }
            Changed?.Invoke(new FleetEvent(kind, view, Now));
            return view;
        }
        finally
        {
            _gate.Release();
        }
    }

    private Entry NewEntry(InstanceRecord record)
    {
        Entry? entry = null;
        var runner = new InstanceRunner(record.Name, Path.Combine(_directory, record.Name), _options, _time, _logger, runtime => AnnounceAsync(FleetEvent.StatusChanged, () =>
        {
            entry!.Runtime = runtime;
            return _instances.TryGetValue(record.Name, out var current) && ReferenceEquals(current, entry) ? entry : null;
        }), _terminals, record.CreatedBy);
        entry = new Entry(record, runner);
        return entry;
    }

    private static void RequireAdmin(FleetActor actor)
    {
        if (!actor.IsAdmin)
        {
            throw new FleetException(FleetErrors.Forbidden, "only hub admins run fleet lifecycle operations (they run commands as the hub's user)");
        }
    }

    private static void CheckName(string? name, string field)
    {
        if (!InstanceRecord.IsValidName(name))
        {
            throw new FleetException(FleetErrors.InvalidInstance, $"{field}: an instance name is 1-63 of a-z 0-9 _ - starting with a letter or digit");
        }
    }

    /// <summary>Stops every process (SIGTERM, then SIGKILL after the grace period) without changing desired states: they start again with the hub.</summary>
    public async ValueTask DisposeAsync()
    {
        List<Entry> entries;
        await _gate.WaitAsync();
        try
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            entries = [.. _instances.Values];
        }
        finally
        {
            _gate.Release();
        }
        await Task.WhenAll(entries.Select(e => e.Runner.DisposeAsync().AsTask()));
    }
}
