using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Parley.Cli.Commands;
using Parley.Client;

namespace Parley.Cli.Mcp;

/// <summary>
/// The hub side of <c>parley mcp</c> (docs/agents.md): one <see cref="ParleyClient"/> of kind <c>agent</c>
/// (so reconnect, rejoin and recovery are the client's), the user's inbox topic, the channels the agent
/// joined (@-mentions of it become items) or follows (every message does), and the feed of items to push.
/// The inbox is the truth and a push only a hint: every item waits until <see cref="AckAsync"/>, and each
/// is pushed at most once per session (deduplicated by message id), however often the hub re-offers it.
/// </summary>
internal sealed class AgentSession : IAsyncDisposable
{
    private const string Lobby = "hub:lobby";
    private readonly ParleyClient _client;
    private readonly Func<CredentialRequest, CancellationToken, ValueTask<string?>>? _credentials;
    private readonly AgentBook _book;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _joins = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<AgentItem> _pushes = Channel.CreateUnbounded<AgentItem>(new UnboundedChannelOptions { SingleReader = true });
    // Topics joined on the client: true = as a member (presence, mentions), false = for a tool call only (no presence).
    private readonly Dictionary<string, bool> _onClient = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AgentItem> _channelItems = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SortedSet<long>> _unackedOffsets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _seen = new(StringComparer.Ordinal);
    private readonly HashSet<string> _pushed = new(StringComparer.Ordinal);
    private TaskCompletionSource _arrival = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Regex _mention = null!;
    private Task? _pump;

    private AgentSession(ParleyClient client, Uri server, Func<CredentialRequest, CancellationToken, ValueTask<string?>>? credentials, AgentBook book, PushPolicy policy)
    {
        _client = client;
        Server = server;
        _credentials = credentials;
        _book = book;
        Policy = policy;
    }

    public Uri Server { get; }
    public ParleyClient Client => _client;
    public PushPolicy Policy { get; }
    public string Name { get; private set; } = "";
    public string Role { get; private set; } = "";
    public string InboxTopic => "user:" + Name;

    /// <summary>Items to push, in arrival order (already filtered by the policy and deduplicated).</summary>
    public ChannelReader<AgentItem> Pushes => _pushes.Reader;

    /// <summary>
    /// Connects, learns who the credential is, joins the inbox and the channels from <paramref name="join"/>
    /// and from earlier sessions (see <see cref="AgentBook"/>), and starts listening.
    /// </summary>
    public static async Task<AgentSession> StartAsync(ParleyClient client, Uri server, Func<CredentialRequest, CancellationToken, ValueTask<string?>>? credentials,
        Func<Uri, string, AgentBook> book, string? allowFrom, IReadOnlyList<string> join, IReadOnlyList<string> follow, CancellationToken cancellationToken)
    {
        PushPolicy? policy = null;
        var bearer = credentials is null ? null : await credentials(new CredentialRequest(false), cancellationToken);
        var me = await IdentityCommands.GetAsync(server, "/api/whoami", bearer, cancellationToken);
        var name = me["name"]!.GetValue<string>();
        AgentSession? session = null;
        policy = new PushPolicy(allowFrom, (group, ct) => session!.GroupMembersAsync(group, ct));
        session = new AgentSession(client, server, credentials, book(server, name), policy)
        {
            Name = name,
            Role = me["role"]?.GetValue<string>() ?? "",
            _mention = new Regex($@"(?<![A-Za-z0-9_.@/-])@{Regex.Escape(name)}(?![A-Za-z0-9_/-])", RegexOptions.CultureInvariant),
        };
        await client.StartAsync(cancellationToken);
        session._pump = Task.Run(() => session.PumpAsync(session._stop.Token), CancellationToken.None);
        await session.JoinInboxAsync(cancellationToken);
        foreach (var topic in join)
        {
            session._book.Joined.Add(topic);
        }
        foreach (var topic in follow)
        {
            session._book.Followed.Add(topic);
        }
        if (session._book.Joined.Count == 0 && session._book.Followed.Count == 0)
        {
            session._book.Joined.Add("room:lobby"); // somewhere to be seen online
        }
        foreach (var topic in session._book.Joined.Union(session._book.Followed).ToList())
        {
            try
            {
                await session.JoinAsMemberAsync(topic, cancellationToken);
            }
            catch (ToolException ex)
            {
                await Console.Error.WriteLineAsync($"parley mcp: {ex.Message}");
            }
        }
        session._book.Save();
        return session;
    }

    public bool IsJoined(string topic)
    {
        lock (_gate)
        {
            return _book.Joined.Contains(topic);
        }
    }

    public (string[] Joined, string[] Followed) Channels()
    {
        lock (_gate)
        {
            return (_book.Joined.ToArray(), _book.Followed.ToArray());
        }
    }

    // ---- channels ----

    /// <summary>Joins a room as the agent (its presence shows there, @-mentions of it become items); <paramref name="follow"/>: every message does.</summary>
    public async Task JoinChannelAsync(string topic, bool follow, CancellationToken cancellationToken)
    {
        await JoinAsMemberAsync(topic, cancellationToken);
        lock (_gate)
        {
            _book.Joined.Add(topic);
            if (follow)
            {
                _book.Followed.Add(topic);
            }
        }
        _book.Save();
    }

    /// <summary>Stops following (messages are only items when they mention the agent); the agent stays joined.</summary>
    public void Unfollow(string topic)
    {
        lock (_gate)
        {
            _book.Followed.Remove(topic);
        }
        _book.Save();
    }

    /// <summary>Leaves a room: no presence, no items from it; its unacked items are dropped from the inbox.</summary>
    public async Task<bool> LeaveChannelAsync(string topic, CancellationToken cancellationToken)
    {
        bool was;
        lock (_gate)
        {
            was = _book.Joined.Remove(topic) | _book.Followed.Remove(topic);
            _book.Cursors.Remove(topic);
            _book.Acked.Remove(topic);
            _unackedOffsets.Remove(topic);
            _seen.Remove(topic);
            foreach (var id in _channelItems.Where(i => i.Value.Channel == topic).Select(i => i.Key).ToList())
            {
                _channelItems.Remove(id);
            }
        }
        await _joins.WaitAsync(cancellationToken);
        try
        {
            if (_onClient.Remove(topic))
            {
                await _client.LeaveAsync(topic, cancellationToken);
            }
        }
        finally
        {
            _joins.Release();
        }
        _book.Save();
        return was;
    }

    /// <summary>Makes sure <paramref name="topic"/> is joined for a tool call (rooms without presence); returns the join reply, or null when it already was.</summary>
    public async Task<PushReply?> EnsureJoinedAsync(string topic, CancellationToken cancellationToken)
    {
        await _joins.WaitAsync(cancellationToken);
        try
        {
            if (_onClient.ContainsKey(topic))
            {
                return null;
            }
            var reply = await JoinOnClientAsync(topic, since: null, topic.StartsWith("room:", StringComparison.Ordinal) ? new JsonObject { ["presence"] = false } : null, cancellationToken);
            _onClient[topic] = false;
            return reply;
        }
        finally
        {
            _joins.Release();
        }
    }

    private async Task JoinAsMemberAsync(string topic, CancellationToken cancellationToken)
    {
        await _joins.WaitAsync(cancellationToken);
        try
        {
            if (_onClient.TryGetValue(topic, out var member))
            {
                if (member)
                {
                    return;
                }
                await _client.LeaveAsync(topic, cancellationToken); // joined for a tool call without presence: join again as a member
                _onClient.Remove(topic);
            }
            long? cursor;
            lock (_gate)
            {
                cursor = _book.Cursors.TryGetValue(topic, out var c) ? c : null;
                if (cursor is { } known)
                {
                    _seen[topic] = known;
                }
            }
            var reply = await JoinOnClientAsync(topic, cursor, null, cancellationToken);
            _onClient[topic] = true;
            if (cursor is null && reply.Response.ValueKind == JsonValueKind.Object && reply.Response.TryGetProperty("offset", out var head) && head.TryGetInt64(out var h))
            {
                lock (_gate)
                {
                    _seen[topic] = h; // a new member starts at the head: nothing from before it joined is an item
                    _book.Cursors[topic] = h;
                }
            }
            else if (cursor is not null && reply.Response.ValueKind == JsonValueKind.Object && reply.Response.TryGetProperty("recovered", out var r) && r.ValueKind == JsonValueKind.False)
            {
                await Console.Error.WriteLineAsync($"parley mcp: {topic} could not be replayed from offset {cursor} (retention removed it); items from the gap are lost");
            }
        }
        finally
        {
            _joins.Release();
        }
    }

    private async Task<PushReply> JoinOnClientAsync(string topic, long? since, JsonObject? joinParams, CancellationToken cancellationToken)
    {
        PushReply reply;
        try
        {
            reply = await _client.JoinAsync(topic, since, joinParams, cancellationToken);
        }
        catch (ParleyClientException ex)
        {
            throw new ToolException($"cannot join {topic}: {ex.Message}; try again in a few seconds");
        }
        if (!reply.IsOk)
        {
            throw new ToolException($"cannot join {topic}: {reply.Reason}{(ClientCommands.Detail(reply) is { Length: > 0 } d ? " (" + d + ")" : "")}" +
                (reply.Reason is "forbidden" or "unauthorized" ? "; this credential may not join it (a private channel, or an API key limited to other topics)" : ""));
        }
        return reply;
    }

    private async Task JoinInboxAsync(CancellationToken cancellationToken)
    {
        await _joins.WaitAsync(cancellationToken);
        try
        {
            await JoinOnClientAsync(InboxTopic, since: null, null, cancellationToken);
            _onClient[InboxTopic] = true;
        }
        finally
        {
            _joins.Release();
        }
    }

    // ---- requests ----

    /// <summary>One push on a joined topic; a refusal becomes a <see cref="ToolException"/> saying what to do.</summary>
    public async Task<JsonElement> RequestAsync(string topic, string @event, object payload, CancellationToken cancellationToken)
    {
        if (topic != Lobby)
        {
            await EnsureJoinedAsync(topic, cancellationToken);
        }
        try
        {
            return await ClientCommands.RequestAsync(_client, topic, @event, payload, cancellationToken, join: false);
        }
        catch (IdentityCommands.CliFailure ex)
        {
            throw new ToolException($"the hub refused {@event} on {topic}: {ex.Message}{Hint(ex.Message)}");
        }
        catch (ParleyClientException ex)
        {
            throw new ToolException($"{@event} on {topic} failed: {ex.Message}; the connection is being restored, call the tool again in a few seconds");
        }
    }

    /// <summary>An HTTP API call with the agent's credential.</summary>
    public async Task<JsonObject> GetAsync(string path, CancellationToken cancellationToken)
    {
        var bearer = _credentials is null ? null : await _credentials(new CredentialRequest(false), cancellationToken);
        try
        {
            return await IdentityCommands.GetAsync(Server, path, bearer, cancellationToken);
        }
        catch (IdentityCommands.CliFailure ex)
        {
            throw new ToolException($"the hub refused GET {path.Split('?')[0]}: {ex.Message}{Hint(ex.Message)}");
        }
    }

    private async Task<IReadOnlyCollection<string>> GroupMembersAsync(string group, CancellationToken cancellationToken)
    {
        var reply = await GetAsync("/api/groups/" + Uri.EscapeDataString(group), cancellationToken);
        return reply["expanded"]?.AsArray().Select(u => u!.GetValue<string>()).ToArray() ?? [];
    }

    private static string Hint(string failure) => failure switch
    {
        _ when failure.StartsWith("not_found", StringComparison.Ordinal) || failure.Contains("_not_found", StringComparison.Ordinal) => "; check the name (peers and channels list what exists)",
        _ when failure.StartsWith("forbidden", StringComparison.Ordinal) => "; this credential may not do that (a guest or read-only key, or a private channel)",
        _ when failure.StartsWith("version_conflict", StringComparison.Ordinal) => "; get the key again and retry with its current version",
        _ when failure.StartsWith("already_claimed", StringComparison.Ordinal) => "; someone else holds it: list open tasks and pick another",
        _ when failure.StartsWith("rate_limited", StringComparison.Ordinal) => "; wait a moment and try again",
        _ => "",
    };

    // ---- inbox ----

    /// <summary>
    /// Unread items, oldest first: the hub's direct messages (fetched now: the inbox is the truth) and the
    /// channel items of this session. With <paramref name="wait"/> and nothing unread, waits until something
    /// arrives or the time is up.
    /// </summary>
    public async Task<(List<AgentItem> Items, int Total)> InboxAsync(int limit, TimeSpan wait, CancellationToken cancellationToken)
    {
        Task arrival;
        List<AgentItem> local;
        lock (_gate)
        {
            local = [.. _channelItems.Values];
            arrival = _arrival.Task;
        }
        var fetch = RequestAsync(InboxTopic, "inbox", new { limit, wait_ms = local.Count == 0 ? (int)wait.TotalMilliseconds : 0 }, cancellationToken);
        if (local.Count == 0 && wait > TimeSpan.Zero && await Task.WhenAny(fetch, arrival) != fetch)
        {
            _ = fetch.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            lock (_gate)
            {
                local = [.. _channelItems.Values];
            }
            var all = local.OrderBy(i => i.SentAtMs).ToList();
            return (all.Take(limit).ToList(), all.Count);
        }
        var fetched = await fetch;
        var dms = fetched.GetProperty("messages").EnumerateArray().Select(DmItem).ToList();
        lock (_gate)
        {
            local = [.. _channelItems.Values];
        }
        var items = dms.Concat(local).OrderBy(i => i.SentAtMs).ToList();
        return (items.Take(limit).ToList(), items.Count);
    }

    /// <summary>Marks items handled: direct messages read on the hub, channel items done here (and in the book). Returns how many were acked, how many DM ids were not unread, and ids that are neither.</summary>
    public async Task<(int Acked, int NotUnread, List<string> Unknown)> AckAsync(IReadOnlyList<string> ids, CancellationToken cancellationToken)
    {
        var dmIds = new List<string>();
        var unknown = new List<string>();
        var acked = 0;
        var notUnread = 0;
        lock (_gate)
        {
            foreach (var id in ids.Distinct(StringComparer.Ordinal))
            {
                if (_channelItems.Remove(id, out var item))
                {
                    acked++;
                    _unackedOffsets[item.Channel].Remove(item.Offset);
                    if (!_book.Acked.TryGetValue(item.Channel, out var done))
                    {
                        _book.Acked[item.Channel] = done = [];
                    }
                    done.Add(item.Offset);
                    AdvanceCursor(item.Channel);
                }
                else if (id.StartsWith("dm-", StringComparison.Ordinal))
                {
                    dmIds.Add(id);
                }
                else
                {
                    unknown.Add(id);
                }
            }
        }
        if (acked > 0)
        {
            _book.Save();
        }
        if (dmIds.Count > 0)
        {
            var read = await RequestAsync(InboxTopic, "ack", new { ids = dmIds }, cancellationToken);
            var n = read.GetProperty("read").GetInt32();
            acked += n;
            notUnread = dmIds.Count - n; // already read, or not this user's: the hub does not say which
        }
        return (acked, notUnread, unknown);
    }

    // ---- the pump ----

    private async Task PumpAsync(CancellationToken stop)
    {
        var events = Task.Run(() => WatchEventsAsync(stop), CancellationToken.None);
        try
        {
            await foreach (var message in _client.Messages.ReadAllAsync(stop))
            {
                try
                {
                    if (message.Topic == InboxTopic && message.Event == "dm" && message.Payload.ValueKind == JsonValueKind.Object)
                    {
                        await OfferAsync(DmItem(message.Payload), stop);
                    }
                    else if (message.Event == "msg" && message.Offset is { } offset && message.Topic.StartsWith("room:", StringComparison.Ordinal))
                    {
                        await OnRoomMessageAsync(message.Topic, offset, message.Payload, stop);
                    }
                }
                catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    await Console.Error.WriteLineAsync($"parley mcp: skipped a malformed {message.Event} on {message.Topic}: {ex.Message}");
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        await events;
    }

    private async Task WatchEventsAsync(CancellationToken stop)
    {
        try
        {
            await foreach (var e in _client.Events.ReadAllAsync(stop))
            {
                switch (e)
                {
                    case Reconnecting r:
                        await Console.Error.WriteLineAsync($"parley mcp: connection lost ({r.Reason}); reconnecting (attempt {r.Attempt})");
                        break;
                    case Rejoined { Recovered: false } j when j.Topic.StartsWith("room:", StringComparison.Ordinal):
                        await Console.Error.WriteLineAsync($"parley mcp: rejoined {j.Topic} but the hub could not replay everything missed; items from the gap are lost");
                        break;
                    case AuthFailed a:
                        await Console.Error.WriteLineAsync($"parley mcp: {a.Reason}; tools will fail until the credential is fixed and the server restarted");
                        break;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task OnRoomMessageAsync(string topic, long offset, JsonElement payload, CancellationToken cancellationToken)
    {
        var from = payload.GetProperty("from").GetString()!;
        var body = payload.GetProperty("body").GetString()!;
        AgentItem? item = null;
        lock (_gate)
        {
            var member = _book.Joined.Contains(topic) || _book.Followed.Contains(topic);
            // After a restart the join replays from the cursor, so every offset above what was seen is new.
            if (!member || (_seen.TryGetValue(topic, out var seen) && offset <= seen))
            {
                return;
            }
            _seen[topic] = Math.Max(offset, _seen.GetValueOrDefault(topic));
            var acked = _book.Acked.TryGetValue(topic, out var done) && done.Contains(offset);
            var kind = from == Name ? null : _book.Followed.Contains(topic) ? (_mention.IsMatch(body) ? "mention" : "channel") : _mention.IsMatch(body) ? "mention" : null;
            if (kind is not null && !acked)
            {
                item = new AgentItem(payload.GetProperty("id").GetString()!, kind, topic, offset, from, null, kind == "mention" ? "next" : "low", body, payload.GetProperty("ts").GetInt64());
                _channelItems[item.Id] = item;
                if (!_unackedOffsets.TryGetValue(topic, out var open))
                {
                    _unackedOffsets[topic] = open = [];
                }
                open.Add(offset);
            }
            AdvanceCursor(topic);
        }
        if (item is not null)
        {
            // A cursor saved late only means a longer replay next session (acked offsets are saved with each ack).
            _book.Save();
            await OfferAsync(item, cancellationToken);
        }
    }

    // Caller holds _gate. The cursor is the offset up to which everything was handled.
    private void AdvanceCursor(string topic)
    {
        var seen = _seen.GetValueOrDefault(topic);
        var cursor = _unackedOffsets.TryGetValue(topic, out var open) && open.Count > 0 ? open.Min - 1 : seen;
        _book.Cursors[topic] = cursor;
        if (_book.Acked.TryGetValue(topic, out var done))
        {
            done.RemoveWhere(o => o <= cursor);
        }
    }

    private async Task OfferAsync(AgentItem item, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var previous = _arrival;
            _arrival = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            previous.TrySetResult();
            if (_pushed.Contains(item.Id))
            {
                return; // re-offered (a rejoin, a replay): pushed once per session is enough, the inbox still has it
            }
        }
        if (!await Policy.AllowsAsync(item.From, cancellationToken))
        {
            return;
        }
        lock (_gate)
        {
            if (!_pushed.Add(item.Id))
            {
                return;
            }
        }
        _pushes.Writer.TryWrite(item);
    }

    private static AgentItem DmItem(JsonElement m) => new(
        m.GetProperty("id").GetString()!, "dm", "dm", m.GetProperty("seq").GetInt64(), m.GetProperty("from").GetString()!,
        m.TryGetProperty("to", out var to) ? to.GetString() : null, m.GetProperty("priority").GetString()!, m.GetProperty("body").GetString()!, m.GetProperty("sent_at").GetInt64());

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _client.DisposeAsync(); // closes the socket: the agent's presence leaves every channel
        if (_pump is not null)
        {
            await _pump;
        }
        _pushes.Writer.TryComplete();
        _book.Save();
        _stop.Dispose();
    }
}
