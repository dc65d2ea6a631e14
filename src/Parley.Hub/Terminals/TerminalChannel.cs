using System.Collections.Concurrent;
using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Protocol;
using Parley.Terminal.Recording;

namespace Parley.Hub.Terminals;

/// <summary>
/// <c>term:&lt;id&gt;</c> and <c>term:lobby</c> (docs/protocol.md §17). An owner (join param <c>role: "owner"</c>)
/// streams its recording as binary pushes; viewers get the output as shared binary broadcasts, read any range
/// of the hub's copy with <c>fetch_output</c>/<c>fetch_input</c>, and type when the owner allowed them.
/// <c>term:lobby</c> is the registry: a snapshot of live sessions, then started/updated/ended.
/// </summary>
public sealed class TerminalChannel : IChannelHandler
{
    /// <summary>The topic prefix served.</summary>
    public const string TopicPrefix = "term:";

    /// <summary>The registry topic.</summary>
    public const string LobbyTopic = "term:lobby";

    private readonly ParleyHub _hub;
    private readonly TerminalRegistry _registry;
    private readonly ConcurrentDictionary<Subscriber, Member> _members = new();
    private readonly ConcurrentDictionary<Subscriber, ResyncingSender> _lobby = new();

    public TerminalChannel(ParleyHub hub, TerminalRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(hub);
        ArgumentNullException.ThrowIfNull(registry);
        _hub = hub;
        _registry = registry;
        registry.Changed += OnRegistryChanged;
    }

    string IChannelHandler.TopicPrefix => TopicPrefix;

    /// <inheritdoc />
    public ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.Topic == LobbyTopic)
        {
            return ValueTask.FromResult<Subscriber?>(JoinLobby(connection, message));
        }
        var id = message.Topic[TopicPrefix.Length..];
        if (!RecordingFiles.IsValidId(id))
        {
            connection.ReplyError(message, ErrorReasons.InvalidTopic, "a terminal topic is term:<id> with an id of 1-64 of a-z 0-9 _ - (or term:lobby)");
            return ValueTask.FromResult<Subscriber?>(null);
        }
        var role = message.Payload.ValueKind == JsonValueKind.Object && message.Payload.TryGetProperty("role"u8, out var r) ? r : default;
        if (role.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.String) || (role.ValueKind == JsonValueKind.String && role.GetString() is not ("owner" or "viewer")))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "role is \"owner\" or \"viewer\"");
            return ValueTask.FromResult<Subscriber?>(null);
        }
        try
        {
            return ValueTask.FromResult<Subscriber?>(role.ValueKind == JsonValueKind.String && role.GetString() == "owner"
                ? JoinOwner(connection, message, id)
                : JoinViewer(connection, message, id));
        }
        catch (TerminalException ex)
        {
            connection.ReplyError(message, ex.Reason, ex.Message);
            return ValueTask.FromResult<Subscriber?>(null);
        }
    }

    private Subscriber Subscribe(HubConnection connection, PhoenixMessage message)
    {
        Subscriber? subscriber;
        do
        {
            subscriber = _hub.Topics.GetOrAdd(message.Topic).BeginSubscribe(connection, message.JoinRef ?? message.Ref ?? "", storeHead: 0, out _);
        }
        while (subscriber is null);
        return subscriber;
    }

    private Subscriber? JoinOwner(HubConnection connection, PhoenixMessage message, string id)
    {
        if (!connection.Principal.CanWrite)
        {
            connection.ReplyError(message, ErrorReasons.Forbidden, "this credential is read-only: it cannot run a terminal session");
            return null;
        }
        if (ReadHello(message.Payload, out var error) is not { } hello)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
            return null;
        }
        var subscriber = Subscribe(connection, message);
        try
        {
            var (terminal, output, input, replaced) = _registry.AttachOwner(id, connection.Principal, hello, subscriber);
            _members[subscriber] = new Member(terminal, IsOwner: true);
            connection.ReplyOk(message, (output, input), static (w, s) =>
            {
                w.WriteStartObject();
                w.WriteNumber("output_size"u8, s.output);
                w.WriteNumber("input_size"u8, s.input);
                w.WriteEndObject();
            });
            subscriber.Topic.CompleteSubscribe(subscriber);
            replaced?.Connection.RemoveSubscription(message.Topic, sendClose: true);
            return subscriber;
        }
        catch
        {
            subscriber.Topic.Unsubscribe(subscriber);
            throw;
        }
    }

    private Subscriber? JoinViewer(HubConnection connection, PhoenixMessage message, string id)
    {
        var terminal = _registry.Find(id) ?? throw new TerminalException(TerminalErrors.SessionNotFound, $"no terminal session {id} on this hub (see GET /api/terminals)");
        var subscriber = Subscribe(connection, message);
        var canInput = terminal.CanInput(connection.Principal);
        _members[subscriber] = new Member(terminal, IsOwner: false);
        terminal.AddViewer(subscriber, _registry.Options.EffectiveViewerQueueBytes(_hub.Options), (t, _) => connection.ReplyOk(message, (t, canInput), static (w, s) =>
        {
            w.WriteStartObject();
            s.t.WriteMetaFields(w);
            w.WriteBoolean("can_input"u8, s.canInput);
            w.WriteEndObject();
        }));
        subscriber.Topic.CompleteSubscribe(subscriber);
        return subscriber;
    }

    private Subscriber JoinLobby(HubConnection connection, PhoenixMessage message)
    {
        var subscriber = Subscribe(connection, message);
        _registry.Read(sessions =>
        {
            connection.ReplyOk(message, sessions, static (w, list) => WriteSessions(w, list));
            var joinRef = subscriber.JoinRef;
            _lobby[subscriber] = new ResyncingSender(connection, _hub.Options.EffectiveStreamLagBytes, sender =>
            {
                _registry.Read(now => sender.SendSnapshot(WireFrames.Text(joinRef, null, LobbyTopic, "snapshot", now, static (w, list) => WriteSessions(w, list))));
                return ValueTask.CompletedTask;
            });
            return 0;
        });
        subscriber.Topic.CompleteSubscribe(subscriber);
        return subscriber;
    }

    /// <inheritdoc />
    public bool IsBulkPush(Subscriber subscriber, PhoenixMessage message) =>
        message.IsBinary && message.Event is "record_output" or "record_input" && _members.TryGetValue(subscriber, out var member) && member.IsOwner;

    /// <inheritdoc />
    public async ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (!_members.TryGetValue(subscriber, out var member))
        {
            connection.ReplyError(message, ErrorReasons.UnknownEvent, $"{LobbyTopic} only pushes; it takes no events");
            return;
        }
        try
        {
            if (member.IsOwner)
            {
                HandleOwner(connection, message, member.Terminal, subscriber);
            }
            else
            {
                await HandleViewerAsync(connection, message, member.Terminal, cancellationToken);
            }
        }
        catch (TerminalException ex)
        {
            connection.ReplyError(message, ex.Reason, ex.Message);
        }
    }

    private void HandleOwner(HubConnection connection, PhoenixMessage message, HubTerminal terminal, Subscriber subscriber)
    {
        if (!terminal.IsOwnerSubscription(subscriber))
        {
            connection.ReplyError(message, ErrorReasons.Forbidden, "another connection took this session over");
            return;
        }
        switch (message.Event)
        {
            case "record_output" or "record_input":
                if (!message.IsBinary || message.BinaryPayload.Length < 8
                    || System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(message.BinaryPayload.Span) is var offset && offset < 0)
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, $"{message.Event} is a binary push: the chunk's offset (8 bytes, big-endian) then its bytes");
                    return;
                }
                var bytes = message.BinaryPayload.Span[8..];
                var size = message.Event == "record_output" ? terminal.RecordOutput(offset, bytes) : terminal.RecordInput(offset, bytes);
                connection.ReplyOk(message, size, static (w, n) =>
                {
                    w.WriteStartObject();
                    w.WriteNumber("size"u8, n);
                    w.WriteEndObject();
                });
                return;
            case "resize":
                if (!TryReadSize(message.Payload, out var cols, out var rows))
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, "resize takes {cols, rows}: whole numbers from 1 to 10000");
                    return;
                }
                terminal.Resize(cols, rows);
                ReplyEmpty(connection, message);
                return;
            case "exit":
                if (!TryReadOptionalInt(message.Payload, "exit_code"u8, out var exitCode) || !TryReadOptionalInt(message.Payload, "signal"u8, out var signal))
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, "exit takes {exit_code, signal}: whole numbers or null");
                    return;
                }
                _registry.End(terminal, exitCode, signal);
                ReplyEmpty(connection, message);
                return;
            case "grant":
                if (message.Payload.ValueKind != JsonValueKind.Object || !message.Payload.TryGetProperty("user"u8, out var user) || user.ValueKind != JsonValueKind.String
                    || user.GetString() is not { Length: > 0 and <= 64 } name)
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, "grant takes {user, input: true|false}");
                    return;
                }
                terminal.Grant(name, !message.Payload.TryGetProperty("input"u8, out var input) || input.ValueKind != JsonValueKind.False);
                ReplyEmpty(connection, message);
                return;
            default:
                connection.ReplyError(message, ErrorReasons.UnknownEvent, "an owner pushes record_output, record_input, resize, exit or grant");
                return;
        }
    }

    private async ValueTask HandleViewerAsync(HubConnection connection, PhoenixMessage message, HubTerminal terminal, CancellationToken cancellationToken)
    {
        switch (message.Event)
        {
            case "get_meta":
                connection.ReplyOk(message, terminal, static (w, t) =>
                {
                    w.WriteStartObject();
                    t.WriteMetaFields(w);
                    w.WriteEndObject();
                });
                return;
            case "get_stats":
                connection.ReplyOk(message, terminal, static (w, t) => t.WriteStats(w));
                return;
            case "fetch_output" or "fetch_input":
                if (!TryReadRange(message.Payload, _registry.Options.EffectiveMaxFetchBytes(_hub.Options), out var offset, out var limit, out var error))
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
                    return;
                }
                var bytes = terminal.Fetch(message.Event == "fetch_output", offset, limit);
                // Waits for room like a replay: a viewer reading its backfill only slows itself.
                await connection.SendAsync(PhoenixBinaryCodec.EncodeReply(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk, bytes, wsFramed: true), cancellationToken);
                return;
            case "input":
            {
                if (!terminal.CanInput(connection.Principal))
                {
                    connection.ReplyError(message, ErrorReasons.Forbidden, "this session is read-only for you: its owner can allow input (parley run --allow-input, or a grant)");
                    return;
                }
                if (!TryReadInput(message.Payload, _registry.Options.MaxInputBytes, out var data, out var inputError))
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, inputError);
                    return;
                }
                terminal.ForwardInput(connection.Principal.Name, data);
                ReplyEmpty(connection, message);
                return;
            }
            case "resize":
            {
                if (!terminal.CanInput(connection.Principal))
                {
                    connection.ReplyError(message, ErrorReasons.Forbidden, "this session is read-only for you: only viewers allowed to type may resize it");
                    return;
                }
                if (!TryReadSize(message.Payload, out var cols, out var rows))
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, "resize takes {cols, rows}: whole numbers from 1 to 10000");
                    return;
                }
                terminal.ForwardResize(connection.Principal.Name, cols, rows);
                ReplyEmpty(connection, message);
                return;
            }
            default:
                connection.ReplyError(message, ErrorReasons.UnknownEvent, "a viewer pushes get_meta, fetch_output, fetch_input, get_stats, input or resize");
                return;
        }
    }

    /// <inheritdoc />
    public void OnLeft(Subscriber subscriber)
    {
        if (_lobby.TryRemove(subscriber, out var sender))
        {
            sender.Dispose();
        }
        if (_members.TryRemove(subscriber, out var member))
        {
            if (member.IsOwner)
            {
                member.Terminal.DetachOwner(subscriber);
            }
            else
            {
                member.Terminal.RemoveViewer(subscriber);
            }
        }
    }

    // Under the registry's gate: in order; each event encoded once.
    private void OnRegistryChanged(string kind, HubTerminal terminal)
    {
        if (_lobby.IsEmpty)
        {
            return;
        }
        var frame = WireFrames.Text(null, null, LobbyTopic, kind, terminal, static (w, t) =>
        {
            w.WriteStartObject();
            w.WritePropertyName("session"u8);
            t.WriteSummary(w);
            w.WriteEndObject();
        });
        foreach (var (_, sender) in _lobby)
        {
            sender.SendDelta(frame);
        }
    }

    /// <summary>Writes <c>{sessions: [...]}</c>.</summary>
    private static void WriteSessions(Utf8JsonWriter w, IEnumerable<HubTerminal> sessions)
    {
        w.WriteStartObject();
        WriteSessionList(w, sessions);
        w.WriteEndObject();
    }

    /// <summary>Writes the property <c>sessions: [...]</c> into an object being written (the join reply, a snapshot, GET /api/terminals).</summary>
    public static void WriteSessionList(Utf8JsonWriter w, IEnumerable<HubTerminal> sessions)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(sessions);
        w.WriteStartArray("sessions"u8);
        foreach (var session in sessions)
        {
            session.WriteSummary(w);
        }
        w.WriteEndArray();
    }

    private static void ReplyEmpty(HubConnection connection, PhoenixMessage message)
    {
        if (message.Ref is not null)
        {
            connection.Send(WireFrames.ReplyEmpty(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk));
        }
    }

    private static OwnerHello? ReadHello(JsonElement payload, out string error)
    {
        error = "an owner joins with {role: \"owner\", name, command: [...], cols, rows, pid, started_at (Unix ms), allow_input}";
        if (payload.ValueKind != JsonValueKind.Object
            || !payload.TryGetProperty("command"u8, out var command) || command.ValueKind != JsonValueKind.Array || command.GetArrayLength() is 0 or > 256
            || !TryReadSize(payload, out var cols, out var rows)
            || !payload.TryGetProperty("started_at"u8, out var started) || !TryInt64(started, out var startedMs) || startedMs < 0)
        {
            return null;
        }
        var parts = new List<string>();
        foreach (var part in command.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.String || part.GetString()!.Length > 4096)
            {
                return null;
            }
            parts.Add(part.GetString()!);
        }
        var name = payload.TryGetProperty("name"u8, out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : Path.GetFileName(parts[0]);
        if (name.Length is 0 or > 128)
        {
            error = "name must be 1-128 characters";
            return null;
        }
        var pid = ReadInt(payload, "pid"u8) ?? 0;
        var allowInput = payload.TryGetProperty("allow_input"u8, out var a) && a.ValueKind == JsonValueKind.True;
        return new OwnerHello(name, parts, cols, rows, pid, DateTimeOffset.FromUnixTimeMilliseconds(startedMs), allowInput);
    }

    private static bool TryReadSize(JsonElement payload, out int cols, out int rows)
    {
        cols = rows = 0;
        return payload.ValueKind == JsonValueKind.Object
            && payload.TryGetProperty("cols"u8, out var c) && TryInt32(c, out cols) && cols is >= 1 and <= 10_000
            && payload.TryGetProperty("rows"u8, out var r) && TryInt32(r, out rows) && rows is >= 1 and <= 10_000;
    }

    private static int? ReadInt(JsonElement payload, ReadOnlySpan<byte> name) =>
        payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty(name, out var v) && TryInt32(v, out var n) ? n : null;

    // Absent or null is null; anything else must be a whole number.
    private static bool TryReadOptionalInt(JsonElement payload, ReadOnlySpan<byte> name, out int? value)
    {
        value = null;
        if (payload.ValueKind != JsonValueKind.Object || !payload.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return payload.ValueKind is JsonValueKind.Object or JsonValueKind.Undefined;
        }
        if (!TryInt32(v, out var n))
        {
            return false;
        }
        value = n;
        return true;
    }

    // JsonElement.TryGet* throw on a non-number; a string where a number belongs is bad input, answered as such.
    private static bool TryInt32(JsonElement e, out int value)
    {
        value = 0;
        return e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out value);
    }

    private static bool TryInt64(JsonElement e, out long value)
    {
        value = 0;
        return e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out value);
    }

    private static bool TryReadRange(JsonElement payload, int maxLimit, out long offset, out int limit, out string error)
    {
        offset = 0;
        limit = 0;
        error = $"takes {{offset, limit}}: offset a whole number ≥ 0, limit 1-{maxLimit}";
        return payload.ValueKind == JsonValueKind.Object
            && payload.TryGetProperty("offset"u8, out var o) && TryInt64(o, out offset) && offset >= 0
            && payload.TryGetProperty("limit"u8, out var l) && TryInt32(l, out limit) && limit >= 1 && limit <= maxLimit;
    }

    private static bool TryReadInput(JsonElement payload, int maxBytes, out byte[] data, out string error)
    {
        data = [];
        error = $"input takes {{data_b64}}: base64 of at most {maxBytes} bytes";
        if (payload.ValueKind != JsonValueKind.Object || !payload.TryGetProperty("data_b64"u8, out var b64) || b64.ValueKind != JsonValueKind.String
            || b64.GetString() is not { } text || text.Length > (maxBytes + 2) / 3 * 4 + 4)
        {
            return false;
        }
        try
        {
            data = Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            return false;
        }
        return data.Length is > 0 && data.Length <= maxBytes;
    }

    private sealed record Member(HubTerminal Terminal, bool IsOwner);
}
