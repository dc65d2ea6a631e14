using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Hub.State;
using Parley.Protocol;

namespace Parley.Hub.Tasks;

/// <summary>
/// <c>tasks:&lt;board&gt;</c> topics: a shared task board (docs/protocol.md §13) — <c>tasks:hub</c> for the whole
/// hub, <c>tasks:&lt;room name&gt;</c> beside a channel. The join reply carries every task and the board's
/// revision; each change is a <c>task_change</c> event with the next revision. Claims are atomic: the
/// board's writes are serialised and each is a compare-and-set on the task's version, so of two racing
/// claims exactly one wins. Tasks are stored through <see cref="IStateStore"/> (namespace <c>tasks:&lt;board&gt;</c>).
/// </summary>
public sealed class TaskBoardChannel(ParleyHub hub, IStateStore store, StateOptions options) : IChannelHandler
{
    /// <summary>The event every subscriber gets for each change.</summary>
    public const string ChangeEvent = "task_change";

    /// <summary>Longest title, in characters.</summary>
    public const int MaxTitleLength = 200;

    /// <summary>Longest body or result, in characters.</summary>
    public const int MaxTextLength = 8 * 1024;

    /// <summary>Most tags on a task; each is 1–32 of <c>[a-z0-9_-]</c>.</summary>
    public const int MaxTags = 10;

    private const string Prefix = "tasks:";
    private static readonly string[] Priorities = ["now", "next", "low"];
    private readonly NamespaceGates _gates = new();

    /// <inheritdoc />
    public string TopicPrefix => Prefix;

    /// <summary>The hub-wide board, open to every authenticated principal.</summary>
    public const string HubBoard = "tasks:hub";

    /// <summary>The room a board follows for access: <c>tasks:ops</c> → <c>room:ops</c>.</summary>
    public static string RoomOf(string board) => "room:" + board[Prefix.Length..];

    /// <summary>The board beside a room: <c>room:ops</c> → <c>tasks:ops</c>.</summary>
    public static string BoardOf(string room) => Prefix + room["room:".Length..];

    /// <summary>True when <paramref name="topic"/> is <c>tasks:</c> plus 1–100 of <c>[A-Za-z0-9._-]</c>.</summary>
    public static bool IsValidTopic(string topic) =>
        topic.StartsWith(Prefix, StringComparison.Ordinal) && StateChannel.IsValidTopic("state:" + topic[Prefix.Length..]);

    /// <inheritdoc />
    public async ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (!IsValidTopic(message.Topic))
        {
            connection.ReplyError(message, ErrorReasons.InvalidTopic, "task boards are tasks: plus 1-100 characters of A-Z a-z 0-9 . _ - (tasks:hub for the whole hub)");
            return null;
        }
        return await _gates.JoinWithSnapshotAsync(hub, connection, message, ct => store.LoadAsync(message.Topic, ct),
            static (w, s) => NamespaceGates.WriteSnapshot(w, s.Revision, "tasks"u8, s.Entries, WriteTask), cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.IsBinary || message.Payload.ValueKind != JsonValueKind.Object)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "task events take a JSON object payload");
            return ValueTask.CompletedTask;
        }
        if (message.Event == "list")
        {
            return ListAsync(connection, message, cancellationToken);
        }
        if (message.Event is not ("create" or "claim" or "release" or "complete"))
        {
            connection.ReplyError(message, ErrorReasons.UnknownEvent, $"task boards take create, claim, release, complete and list, not '{message.Event}'");
            return ValueTask.CompletedTask;
        }
        if (!connection.Principal.CanWrite)
        {
            connection.ReplyError(message, ErrorReasons.Forbidden, "this connection is read-only (a guest, or a read-scoped API key)");
            return ValueTask.CompletedTask;
        }
        return message.Event == "create" ? CreateAsync(connection, message, cancellationToken) : TransitionAsync(connection, message, cancellationToken);
    }

    private async ValueTask CreateAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        var payload = message.Payload;
        if (!TryText(payload, "title", MaxTitleLength, required: true, out var title, out var error)
            || !TryText(payload, "body", MaxTextLength, required: false, out var body, out error)
            || !TryText(payload, "assignee", 64, required: false, out var assignee, out error)
            || !TryPriority(payload, out var priority, out error)
            || !TryTags(payload, out var tags, out error))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
            return;
        }
        var now = hub.NowMs;
        var task = new JsonObject
        {
            ["title"] = title,
            ["body"] = body,
            ["assignee"] = assignee,
            ["priority"] = priority,
            ["tags"] = new JsonArray([.. tags.Select(t => (JsonNode)t)]),
            ["status"] = "open",
            ["claimed_by"] = null,
            ["result"] = null,
            ["created_by"] = connection.Principal.Name,
            ["created_at"] = now,
        };
        var gate = _gates.For(message.Topic);
        await gate.WaitAsync(cancellationToken);
        try
        {
            StateWriteResult written;
            do
            {
                // A fresh random id, created only if absent (expected version 0): ids never collide.
                written = await store.SetAsync(message.Topic, "t-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5)), task.ToJsonString(),
                    expectedVersion: 0, connection.Principal.Name, now, Limits, cancellationToken);
            }
            while (written.Outcome == StateWriteOutcome.Conflict);
            Answer(connection, message, "created", written);
        }
        finally
        {
            gate.Release();
        }
    }

    // claim, release, complete: read the task, check the transition, write it back conditionally.
    private async ValueTask TransitionAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        var payload = message.Payload;
        if (!TryText(payload, "id", 64, required: true, out var id, out var error)
            || !TryText(payload, "result", MaxTextLength, required: false, out var result, out error))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
            return;
        }
        var gate = _gates.For(message.Topic);
        await gate.WaitAsync(cancellationToken);
        try
        {
            var current = await store.GetAsync(message.Topic, id!, cancellationToken);
            if (current is null)
            {
                connection.ReplyError(message, ErrorReasons.NotFound, $"no task {id} on this board");
                return;
            }
            var task = JsonNode.Parse(current.ValueJson)!.AsObject();
            var status = task["status"]!.GetValue<string>();
            var claimedBy = task["claimed_by"]?.GetValue<string>();
            var me = connection.Principal.Name;
            var mine = claimedBy == me || connection.Principal.IsAdmin;
            string op;
            switch (message.Event)
            {
                case "claim" when status == "open":
                    task["status"] = "claimed";
                    task["claimed_by"] = me;
                    op = "claimed";
                    break;
                case "claim":
                    connection.ReplyError(message, ErrorReasons.AlreadyClaimed, status == "done" ? "the task is done" : $"{claimedBy} claimed it first");
                    return;
                case "release" when status == "claimed" && mine:
                    task["status"] = "open";
                    task["claimed_by"] = null;
                    op = "released";
                    break;
                case "complete" when status == "claimed" && mine:
                    task["status"] = "done";
                    task["result"] = result;
                    op = "completed";
                    break;
                default:
                    connection.ReplyError(message, ErrorReasons.Forbidden, status == "claimed"
                        ? $"only {claimedBy} (or a hub admin) may {message.Event} it"
                        : $"the task is {status}: claim it first");
                    return;
            }
            var written = await store.SetAsync(message.Topic, id!, task.ToJsonString(), current.Version, me, hub.NowMs, Limits, cancellationToken);
            Answer(connection, message, op, written);
        }
        finally
        {
            gate.Release();
        }
    }

    private StateLimits Limits => new(options.MaxKeysPerNamespace, options.EffectiveNamespaceBytes(hub.Options));

    // Under the board's gate: reply to the writer, then tell the board.
    private void Answer(HubConnection connection, PhoenixMessage message, string op, StateWriteResult written)
    {
        switch (written.Outcome)
        {
            case StateWriteOutcome.Written:
                var entry = written.Entry!;
                connection.ReplyOk(message, entry, static (w, e) => WriteTask(w, e));
                NamespaceGates.Broadcast(hub, message.Topic, ChangeEvent, (op, entry), static (w, s) =>
                {
                    w.WriteStartObject();
                    w.WriteString("op"u8, s.op);
                    w.WriteNumber("revision"u8, s.entry.Revision);
                    w.WritePropertyName("task"u8);
                    WriteTask(w, s.entry);
                    w.WriteEndObject();
                });
                break;
            case StateWriteOutcome.Full:
                connection.ReplyError(message, ErrorReasons.StateFull, $"a board holds at most {options.MaxKeysPerNamespace} tasks and {options.EffectiveNamespaceBytes(hub.Options)} bytes");
                break;
            default:
                // The gate serialises this board's writes, so a changed version means another hub wrote it.
                connection.ReplyError(message, ErrorReasons.VersionConflict, "the task changed meanwhile: read it again");
                break;
        }
    }

    private async ValueTask ListAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        var payload = message.Payload;
        string?[] filters = new string?[4];
        var names = new[] { "status", "assignee", "priority", "tag" };
        for (var i = 0; i < names.Length; i++)
        {
            if (!TryText(payload, names[i], 64, required: false, out filters[i], out var error))
            {
                connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
                return;
            }
        }
        var snapshot = await store.LoadAsync(message.Topic, cancellationToken);
        var matching = snapshot.Entries.Where(e =>
        {
            using var task = JsonDocument.Parse(e.ValueJson);
            var root = task.RootElement;
            return Matches(root, "status", filters[0]) && Matches(root, "assignee", filters[1]) && Matches(root, "priority", filters[2])
                && (filters[3] is null || root.GetProperty("tags").EnumerateArray().Any(t => t.GetString() == filters[3]));
        }).ToList();
        connection.ReplyOk(message, (snapshot.Revision, matching), static (w, s) => NamespaceGates.WriteSnapshot(w, s.Revision, "tasks"u8, s.matching, WriteTask));
    }

    private static bool Matches(JsonElement task, string field, string? wanted) =>
        wanted is null || (task.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() == wanted);

    // A task on the wire: its stored fields plus id, version, updated_by and updated_at from the entry.
    private static void WriteTask(Utf8JsonWriter w, StateEntry entry)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, entry.Key);
        using (var task = JsonDocument.Parse(entry.ValueJson))
        {
            foreach (var property in task.RootElement.EnumerateObject())
            {
                if (property.Name != "updated_at")
                {
                    property.WriteTo(w);
                }
            }
        }
        w.WriteNumber("version"u8, entry.Version);
        w.WriteString("updated_by"u8, entry.Author);
        w.WriteNumber("updated_at"u8, entry.UpdatedAtMs);
        w.WriteEndObject();
    }

    private static bool TryText(JsonElement payload, string name, int maxLength, bool required, out string? value, out string error)
    {
        value = null;
        error = "";
        if (!payload.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            error = $"{name} is required";
            return !required;
        }
        if (element.ValueKind != JsonValueKind.String || element.GetString() is not { Length: > 0 } text || text.Length > maxLength)
        {
            error = $"{name} must be a string of 1-{maxLength} characters";
            return false;
        }
        value = text;
        return true;
    }

    private static bool TryPriority(JsonElement payload, out string priority, out string error)
    {
        priority = "next";
        error = "";
        if (!TryText(payload, "priority", 8, required: false, out var given, out error))
        {
            return false;
        }
        if (given is null)
        {
            return true;
        }
        if (!Priorities.Contains(given))
        {
            error = "priority is now, next (the default) or low";
            return false;
        }
        priority = given;
        return true;
    }

    private static bool TryTags(JsonElement payload, out List<string> tags, out string error)
    {
        tags = [];
        error = "";
        if (!payload.TryGetProperty("tags"u8, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        if (element.ValueKind != JsonValueKind.Array || element.GetArrayLength() > MaxTags)
        {
            error = $"tags must be an array of at most {MaxTags} strings";
            return false;
        }
        foreach (var tag in element.EnumerateArray())
        {
            if (tag.ValueKind != JsonValueKind.String || tag.GetString() is not { Length: > 0 and <= 32 } text || !text.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-'))
            {
                error = "each tag is 1-32 of a-z 0-9 _ -";
                return false;
            }
            tags.Add(text);
        }
        return true;
    }
}
