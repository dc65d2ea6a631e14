using System.Collections.Concurrent;
using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Hub.Lobby;
using Parley.Protocol;

namespace Parley.Hub.Fleet;

/// <summary>
/// <c>fleet:instances</c> (docs/protocol.md §15): any connection may watch. The join reply is the snapshot
/// <c>{instances, include_archived}</c>; then every change arrives as an event (<c>status_changed</c>,
/// <c>instance_created</c>, <c>instance_archived</c>, <c>instance_unarchived</c>, <c>instance_deleted</c>). Joins,
/// <c>set_include_archived</c> and announcements all run under the fleet's gate, so a snapshot is exactly what
/// precedes the next event. Each event is encoded once; a watcher without <c>include_archived</c> is sent
/// nothing about archived instances except the archive and unarchive events themselves.
/// Lifecycle commands (<c>fleet.*</c>) are served on <c>hub:lobby</c>, for admins.
/// </summary>
public sealed class FleetChannel : IChannelHandler
{
    /// <summary>The one topic served.</summary>
    public const string Topic = "fleet:instances";

    /// <summary>The event that brings a watcher that fell behind up to date: <c>{instances, include_archived}</c>, like the join reply.</summary>
    public const string SnapshotEvent = "snapshot";

    /// <summary>The client push that changes the filter; answered with a fresh snapshot.</summary>
    public const string SetIncludeArchivedEvent = "set_include_archived";

    private readonly FleetService _fleet;
    // Changed only under the fleet gate (join, set_include_archived) or removed on leave.
    private readonly ConcurrentDictionary<Subscriber, Watcher> _watchers = new();
    private readonly ParleyHub _hub;

    public FleetChannel(ParleyHub hub, FleetService fleet)
    {
        ArgumentNullException.ThrowIfNull(hub);
        ArgumentNullException.ThrowIfNull(fleet);
        _hub = hub;
        _fleet = fleet;
        fleet.Changed += OnChanged;
    }

    /// <inheritdoc />
    public string TopicPrefix => "fleet:";

    /// <inheritdoc />
    public async ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.Topic != Topic)
        {
            connection.ReplyError(message, ErrorReasons.InvalidTopic, $"the only fleet: topic is {Topic}");
            return null;
        }
        if (!TryIncludeArchived(message.Payload, out var include))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "include_archived must be true or false");
            return null;
        }
        return await _fleet.ReadAsync(all =>
        {
            Topic topic;
            Subscriber? subscriber;
            do
            {
                topic = _hub.Topics.GetOrAdd(Topic);
                subscriber = topic.BeginSubscribe(connection, message.JoinRef ?? message.Ref ?? "", storeHead: 0, out _);
            }
            while (subscriber is null);
            connection.ReplyOk(message, (all, include), static (w, s) => FleetJson.WriteSnapshot(w, Visible(s.all, s.include), s.include));
            topic.CompleteSubscribe(subscriber);
            var watcher = new Watcher(include);
            watcher.Sender = new ResyncingSender(connection, _hub.Options.EffectiveStreamLagBytes, _ => ResyncAsync(watcher));
            _watchers[subscriber] = watcher;
            return subscriber;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.Event != SetIncludeArchivedEvent)
        {
            connection.ReplyError(message, ErrorReasons.UnknownEvent, $"{Topic} takes {SetIncludeArchivedEvent}; lifecycle commands are fleet.* on hub:lobby");
            return;
        }
        if (message.Payload.ValueKind != JsonValueKind.Object || !TryIncludeArchived(message.Payload, out var include))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "set_include_archived takes {include_archived: true|false}");
            return;
        }
        await _fleet.ReadAsync(all =>
        {
            if (_watchers.TryGetValue(subscriber, out var watcher))
            {
                watcher.IncludeArchived = include;
                // The reply is a snapshot: it also ends a lag.
                watcher.Sender.SendSnapshot(WireFrames.Reply(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk, (all, include),
                    static (w, s) => FleetJson.WriteSnapshot(w, Visible(s.all, s.include), s.include)));
            }
            return 0;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public void OnLeft(Subscriber subscriber)
    {
        if (_watchers.TryRemove(subscriber, out var watcher))
        {
            watcher.Sender.Dispose();
        }
    }

    // A watcher that fell behind: under the gate, so the snapshot is exactly what precedes the next event.
    private async ValueTask ResyncAsync(Watcher watcher) => await _fleet.ReadAsync(all =>
    {
        watcher.Sender.SendSnapshot(WireFrames.Text(null, null, Topic, SnapshotEvent, (all, watcher.IncludeArchived),
            static (w, s) => FleetJson.WriteSnapshot(w, Visible(s.all, s.IncludeArchived), s.IncludeArchived)));
        return 0;
    });

    /// <summary>What a watcher's snapshot holds: archived instances only with <paramref name="includeArchived"/>.</summary>
    public static IEnumerable<InstanceView> Visible(IEnumerable<InstanceView> all, bool includeArchived) =>
        all.Where(v => includeArchived || !v.Record.Archived);

    /// <summary>Whether a watcher hears <paramref name="change"/>: archive and unarchive always, other changes of archived instances only with <paramref name="includeArchived"/>.</summary>
    public static bool Hears(FleetEvent change, bool includeArchived)
    {
        ArgumentNullException.ThrowIfNull(change);
        return includeArchived || change.Kind is FleetEvent.Archived or FleetEvent.Unarchived || !change.Instance.Record.Archived;
    }

    // Also accepts {value: bool}, the field name of the design this stream follows.
    private static bool TryIncludeArchived(JsonElement payload, out bool include)
    {
        include = false;
        if (payload.ValueKind != JsonValueKind.Object)
        {
            return true;
        }
        foreach (var name in (ReadOnlySpan<string>)["include_archived", "value"])
        {
            if (payload.TryGetProperty(name, out var value))
            {
                if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                {
                    return false;
                }
                include = value.GetBoolean();
                return true;
            }
        }
        return true;
    }

    // Under the fleet gate: in order, never waiting (a watcher that fell behind is resynced, not closed).
    private void OnChanged(FleetEvent change)
    {
        byte[]? frame = null;
        foreach (var (_, watcher) in _watchers)
        {
            if (Hears(change, watcher.IncludeArchived))
            {
                frame ??= WireFrames.Text(null, null, Topic, change.Kind, change, FleetJson.WriteEvent);
                watcher.Sender.SendDelta(frame);
            }
        }
    }

    private sealed class Watcher(bool includeArchived)
    {
        public bool IncludeArchived { get; set; } = includeArchived;

        public ResyncingSender Sender { get; set; } = null!;
    }

    /// <summary>
    /// Registers the lifecycle commands on the lobby: <c>fleet.list {include_archived?}</c>, <c>fleet.get {name}</c>,
    /// <c>fleet.create {name, command, …}</c>, <c>fleet.clone {name, new_name}</c> and <c>fleet.start|stop|restart|archive|unarchive|delete {name}</c>.
    /// Each replies ok with the instance (list: the snapshot) or an error with the reason code (<see cref="FleetErrors"/>).
    /// </summary>
    public void RegisterLobbyCommands(LobbyChannel lobby)
    {
        ArgumentNullException.ThrowIfNull(lobby);
        lobby.Register("fleet.list", async (connection, message, ct) =>
        {
            bool include;
            try
            {
                include = FleetJson.ReadFlag(message.Payload, "include_archived");
            }
            catch (FleetException ex)
            {
                connection.ReplyError(message, ex.Code, ex.Message);
                return;
            }
            var list = await _fleet.ListAsync(include, ct);
            connection.ReplyOk(message, (list, include), static (w, s) => FleetJson.WriteSnapshot(w, s.list, s.include));
        });
        lobby.Register("fleet.get", (connection, message, ct) => Run(connection, message, () =>
        {
            var name = FleetJson.ReadName(message.Payload, "name");
            return () => _fleet.GetAsync(name, ct).AsTask();
        }));
        lobby.Register("fleet.create", (connection, message, _) => Run(connection, message, () =>
        {
            if (!connection.Principal.IsAdmin)
            {
                throw new FleetException(FleetErrors.Forbidden, "only hub admins create instances (they run commands as the hub's user)");
            }
            var (name, spec, start) = FleetJson.ReadCreate(message.Payload);
            return () => _fleet.CreateAsync(Actor(connection), name, spec, start);
        }));
        lobby.Register("fleet.clone", (connection, message, _) => Run(connection, message, () =>
        {
            var (name, newName) = (FleetJson.ReadName(message.Payload, "name"), FleetJson.ReadName(message.Payload, "new_name"));
            return () => _fleet.CloneAsync(Actor(connection), name, newName);
        }));
        Lifecycle(lobby, "fleet.start", _fleet.StartInstanceAsync);
        Lifecycle(lobby, "fleet.stop", _fleet.StopInstanceAsync);
        Lifecycle(lobby, "fleet.restart", _fleet.RestartInstanceAsync);
        Lifecycle(lobby, "fleet.archive", _fleet.ArchiveAsync);
        Lifecycle(lobby, "fleet.unarchive", _fleet.UnarchiveAsync);
        Lifecycle(lobby, "fleet.delete", _fleet.DeleteAsync);
    }

    private void Lifecycle(LobbyChannel lobby, string @event, Func<FleetActor, string, CancellationToken, Task<InstanceView>> operation) =>
        lobby.Register(@event, (connection, message, _) => Run(connection, message, () =>
        {
            var name = FleetJson.ReadName(message.Payload, "name");
            return () => operation(Actor(connection), name, CancellationToken.None);
        }));

    private static FleetActor Actor(HubConnection connection) => new(connection.Principal.Name, connection.Principal.IsAdmin);

    // The request is read on the socket's loop (its payload lives only that long); the operation then runs off
    // it (a stop may wait out the grace period) and the reply follows when it is done.
    private static ValueTask Run(HubConnection connection, PhoenixMessage message, Func<Func<Task<InstanceView>>> read)
    {
        Func<Task<InstanceView>> operation;
        try
        {
            operation = read();
        }
        catch (FleetException ex)
        {
            connection.ReplyError(message, ex.Code, ex.Message);
            return ValueTask.CompletedTask;
        }
        _ = Task.Run(async () =>
        {
            try
            {
                var view = await operation();
                connection.ReplyOk(message, view, FleetJson.WriteInstance);
            }
            catch (FleetException ex)
            {
                connection.ReplyError(message, ex.Code, ex.Message);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                connection.ReplyError(message, ErrorReasons.InternalError, "the fleet operation failed; it is logged");
                FleetLog.StepFailed(connection.Hub.Logger, message.Event, ex);
            }
        });
        return ValueTask.CompletedTask;
    }
}
