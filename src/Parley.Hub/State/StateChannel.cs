using System.Text;
using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Protocol;

namespace Parley.Hub.State;

/// <summary>
/// <c>state:&lt;namespace&gt;</c> topics: shared, durable key-value state (docs/protocol.md §State). The join
/// reply carries the namespace's snapshot (every key, and the revision it is as of); afterwards every
/// write arrives as a <c>state_change</c> event with the next revision. Writes to one namespace are
/// serialised with its joins, so a joiner's snapshot and the changes after it neither miss nor repeat
/// a write. Events: <c>set {key, value, expected_version?}</c>, <c>get {key}</c>, <c>list {prefix?}</c>,
/// <c>delete {key, expected_version?}</c>.
/// </summary>
public sealed class StateChannel(ParleyHub hub, IStateStore store, StateOptions options) : IChannelHandler
{
    /// <summary>Longest namespace name, in characters.</summary>
    public const int MaxNamespaceLength = 100;

    /// <summary>Longest key, in characters.</summary>
    public const int MaxKeyLength = 200;

    /// <summary>The event every subscriber gets for each write.</summary>
    public const string ChangeEvent = "state_change";

    private const string Prefix = "state:";

    private readonly NamespaceGates _gates = new();

    /// <inheritdoc />
    public string TopicPrefix => Prefix;

    /// <summary>True when <paramref name="topic"/> is <c>state:</c> plus 1–100 of <c>[A-Za-z0-9._-]</c>.</summary>
    public static bool IsValidTopic(string topic) =>
        topic.StartsWith(Prefix, StringComparison.Ordinal) && IsName(topic.AsSpan(Prefix.Length), MaxNamespaceLength, allowSlash: false);

    /// <summary>True when <paramref name="key"/> is 1–200 of <c>[A-Za-z0-9._:/-]</c>.</summary>
    public static bool IsValidKey(string key) => IsName(key, MaxKeyLength, allowSlash: true);

    private static bool IsName(ReadOnlySpan<char> name, int maxLength, bool allowSlash)
    {
        if (name.Length == 0 || name.Length > maxLength)
        {
            return false;
        }
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' || (allowSlash && c is '/' or ':')))
            {
                return false;
            }
        }
        return true;
    }

    /// <inheritdoc />
    public async ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (!IsValidTopic(message.Topic))
        {
            connection.ReplyError(message, ErrorReasons.InvalidTopic, "state namespaces are state: plus 1-100 characters of A-Z a-z 0-9 . _ -");
            return null;
        }
        return await _gates.JoinWithSnapshotAsync(hub, connection, message, ct => store.LoadAsync(Namespace(message.Topic), ct),
            static (w, s) => NamespaceGates.WriteSnapshot(w, s.Revision, "entries"u8, s.Entries, WriteEntry), cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.IsBinary || message.Payload.ValueKind != JsonValueKind.Object)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "state events take a JSON object payload");
            return ValueTask.CompletedTask;
        }
        return message.Event switch
        {
            "set" => SetAsync(connection, message, cancellationToken),
            "delete" => DeleteAsync(connection, message, cancellationToken),
            "get" => GetAsync(connection, message, cancellationToken),
            "list" => ListAsync(connection, message, cancellationToken),
            _ => Unknown(connection, message),
        };
    }

    private static ValueTask Unknown(HubConnection connection, PhoenixMessage message)
    {
        connection.ReplyError(message, ErrorReasons.UnknownEvent, $"state topics take set, get, list and delete, not '{message.Event}'");
        return ValueTask.CompletedTask;
    }

    private async ValueTask SetAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        if (!CanWrite(connection, message) || !TryKey(connection, message, out var key) || !TryExpectedVersion(connection, message, out var expected))
        {
            return;
        }
        if (!message.Payload.TryGetProperty("value"u8, out var value))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "set needs a value (any JSON)");
            return;
        }
        var json = value.GetRawText();
        if (Encoding.UTF8.GetByteCount(json) > options.MaxValueBytes)
        {
            connection.ReplyError(message, ErrorReasons.TooLarge, $"a value is at most {options.MaxValueBytes} bytes of JSON");
            return;
        }
        var limits = new StateLimits(options.MaxKeysPerNamespace, options.EffectiveNamespaceBytes(hub.Options));
        await WriteAsync(connection, message, "set", ct => store.SetAsync(Namespace(message.Topic), key, json, expected, connection.Principal.Name, hub.NowMs, limits, ct), cancellationToken);
    }

    private async ValueTask DeleteAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        if (!CanWrite(connection, message) || !TryKey(connection, message, out var key) || !TryExpectedVersion(connection, message, out var expected))
        {
            return;
        }
        await WriteAsync(connection, message, "delete", ct => store.DeleteAsync(Namespace(message.Topic), key, expected, connection.Principal.Name, hub.NowMs, ct), cancellationToken);
    }

    // The write, its reply and its broadcast under the namespace's gate: broadcasts leave in revision order.
    private async ValueTask WriteAsync(HubConnection connection, PhoenixMessage message, string op, Func<CancellationToken, ValueTask<StateWriteResult>> write, CancellationToken cancellationToken)
    {
        var gate = _gates.For(message.Topic);
        await gate.WaitAsync(cancellationToken);
        try
        {
            var result = await write(cancellationToken);
            switch (result.Outcome)
            {
                case StateWriteOutcome.Written:
                    var entry = result.Entry!;
                    connection.ReplyOk(message, entry, static (w, e) =>
                    {
                        w.WriteStartObject();
                        w.WriteString("key"u8, e.Key);
                        w.WriteNumber("version"u8, e.Version);
                        w.WriteNumber("revision"u8, e.Revision);
                        w.WriteEndObject();
                    });
                    NamespaceGates.Broadcast(hub, message.Topic, ChangeEvent, (op, entry), static (w, s) =>
                    {
                        w.WriteStartObject();
                        w.WriteString("op"u8, s.op);
                        WriteEntryFields(w, s.entry, withValue: s.op == "set");
                        w.WriteEndObject();
                    });
                    break;
                case StateWriteOutcome.Conflict:
                    connection.ReplyError(message, ErrorReasons.VersionConflict, result.CurrentVersion == 0
                        ? "the key does not exist (current_version 0)"
                        : $"the key is at version {result.CurrentVersion}: read it again and retry");
                    break;
                case StateWriteOutcome.NotFound:
                    connection.ReplyError(message, ErrorReasons.NotFound, "no such key");
                    break;
                default:
                    connection.ReplyError(message, ErrorReasons.StateFull,
                        $"a namespace holds at most {options.MaxKeysPerNamespace} keys and {options.EffectiveNamespaceBytes(hub.Options)} bytes: delete keys or use another namespace");
                    break;
            }
        }
        finally
        {
            gate.Release();
        }
    }

    private async ValueTask GetAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        if (!TryKey(connection, message, out var key))
        {
            return;
        }
        var entry = await store.GetAsync(Namespace(message.Topic), key, cancellationToken);
        if (entry is null)
        {
            connection.ReplyError(message, ErrorReasons.NotFound, "no such key");
            return;
        }
        connection.ReplyOk(message, entry, static (w, e) => WriteEntry(w, e));
    }

    private async ValueTask ListAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        string? prefix = null;
        if (message.Payload.TryGetProperty("prefix"u8, out var p) && p.ValueKind != JsonValueKind.Null)
        {
            if (p.ValueKind != JsonValueKind.String)
            {
                connection.ReplyError(message, ErrorReasons.InvalidPayload, "prefix must be a string");
                return;
            }
            prefix = p.GetString();
        }
        var snapshot = await store.LoadAsync(Namespace(message.Topic), cancellationToken);
        connection.ReplyOk(message, (snapshot, prefix), static (w, s) => NamespaceGates.WriteSnapshot(w, s.snapshot.Revision, "entries"u8,
            s.snapshot.Entries.Where(e => s.prefix is null || e.Key.StartsWith(s.prefix, StringComparison.Ordinal)), WriteEntry));
    }

    private static bool CanWrite(HubConnection connection, PhoenixMessage message)
    {
        if (connection.Principal.CanWrite)
        {
            return true;
        }
        connection.ReplyError(message, ErrorReasons.Forbidden, "this connection is read-only (a guest, or a read-scoped API key)");
        return false;
    }

    private static bool TryKey(HubConnection connection, PhoenixMessage message, out string key)
    {
        key = message.Payload.TryGetProperty("key"u8, out var k) && k.ValueKind == JsonValueKind.String ? k.GetString()! : "";
        if (IsValidKey(key))
        {
            return true;
        }
        connection.ReplyError(message, ErrorReasons.InvalidPayload, "key must be 1-200 characters of A-Z a-z 0-9 . _ : / -");
        return false;
    }

    private static bool TryExpectedVersion(HubConnection connection, PhoenixMessage message, out long? expected)
    {
        expected = null;
        if (!message.Payload.TryGetProperty("expected_version"u8, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var version) && version >= 0)
        {
            expected = version;
            return true;
        }
        connection.ReplyError(message, ErrorReasons.InvalidPayload, "expected_version must be a whole number >= 0 (0: the key must not exist)");
        return false;
    }

    private static string Namespace(string topic) => topic[Prefix.Length..];

    private static void WriteEntry(Utf8JsonWriter w, StateEntry entry)
    {
        w.WriteStartObject();
        WriteEntryFields(w, entry, withValue: true);
        w.WriteEndObject();
    }

    private static void WriteEntryFields(Utf8JsonWriter w, StateEntry entry, bool withValue)
    {
        w.WriteString("key"u8, entry.Key);
        if (withValue)
        {
            w.WritePropertyName("value"u8);
            w.WriteRawValue(entry.ValueJson, skipInputValidation: true);
        }
        w.WriteNumber("version"u8, entry.Version);
        w.WriteString("author"u8, entry.Author);
        w.WriteNumber("updated_at"u8, entry.UpdatedAtMs);
        w.WriteNumber("revision"u8, entry.Revision);
    }
}
