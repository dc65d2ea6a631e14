using System.Collections.Concurrent;
using System.Collections.Immutable;
using Parley.Hub.Rooms;
using Parley.Hub.State;
using Parley.Hub.Tasks;

namespace Parley.Identity;

/// <summary>What a socket may do on a channel, as decided by <see cref="IdentityService.JoinDecision"/>.</summary>
public enum ChannelAccess
{
    Allowed,
    Forbidden,
}

public sealed partial class IdentityService
{
    // Registered channels by topic, kept in memory so a join (and a reconnect storm of them) never
    // waits on the database. Replaced wholesale on every change; readers take a snapshot.
    private readonly ConcurrentDictionary<string, ChannelState> _channels = new(StringComparer.Ordinal);

    private sealed record ChannelState(bool IsPrivate, bool IsDeleted, ImmutableDictionary<string, bool> Members);

    // One channel change at a time: the cache reload after a change can never be overtaken by an older
    // read, and a rename's target cannot be created between its checks and its move.
    private readonly SemaphoreSlim _channelGate = new(1, 1);

    /// <summary>Every registered channel topic (for sweeping subscriptions after a role change).</summary>
    public IReadOnlyCollection<string> RegisteredChannels => [.. _channels.Keys];

    private async Task<T> ChannelChangeAsync<T>(Func<Task<T>> change, CancellationToken cancellationToken)
    {
        await _channelGate.WaitAsync(cancellationToken);
        try
        {
            return await change();
        }
        finally
        {
            _channelGate.Release();
        }
    }

    private Task ChannelChangeAsync(Func<Task> change, CancellationToken cancellationToken) =>
        ChannelChangeAsync(async () =>
        {
            await change();
            return true;
        }, cancellationToken);

    private async Task LoadChannelsAsync(CancellationToken cancellationToken)
    {
        foreach (var channel in await _store.ListChannelsAsync(cancellationToken))
        {
            _channels[channel.Topic] = ToState(channel);
        }
    }

    private static ChannelState ToState(ChannelRecord channel) =>
        new(channel.IsPrivate, channel.DeletedAtMs is not null,
            channel.Members.ToImmutableDictionary(m => m.UserName, m => m.IsAdmin, StringComparer.Ordinal));

    private async Task ReloadChannelAsync(string topic, CancellationToken cancellationToken)
    {
        var channel = (await _store.ListChannelsAsync(cancellationToken)).FirstOrDefault(c => c.Topic == topic);
        if (channel is null)
        {
            _channels.TryRemove(topic, out _);
        }
        else
        {
            _channels[topic] = ToState(channel);
        }
    }

    /// <summary>
    /// May <paramref name="name"/> (a user, or a <c>key:</c> principal) with <paramref name="role"/> join
    /// <paramref name="topic"/>? Unregistered topics are public; a private channel admits its members
    /// and hub admins; a deleted one nobody. A task board <c>tasks:NAME</c> is never registered itself: it
    /// follows <c>room:NAME</c> (rules, members, deletion), except <c>tasks:hub</c>, which every
    /// authenticated principal may join. Answered from memory.
    /// </summary>
    public ChannelAccess JoinDecision(string name, HubRole role, string topic)
    {
        ArgumentNullException.ThrowIfNull(topic);
        if (TaskBoardChannel.IsValidTopic(topic))
        {
            if (topic == TaskBoardChannel.HubBoard)
            {
                return ChannelAccess.Allowed;
            }
            topic = TaskBoardChannel.RoomOf(topic);
        }
        if (!_channels.TryGetValue(topic, out var channel))
        {
            return ChannelAccess.Allowed;
        }
        if (channel.IsDeleted)
        {
            return ChannelAccess.Forbidden;
        }
        return !channel.IsPrivate || role >= HubRole.Admin || channel.Members.ContainsKey(name) ? ChannelAccess.Allowed : ChannelAccess.Forbidden;
    }

    /// <summary>Registers a channel; its creator becomes its admin. Guests cannot create channels.</summary>
    public async Task<ChannelRecord> CreateChannelAsync(Caller caller, string topic, bool isPrivate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (caller.Role < HubRole.Member)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "guests cannot create channels");
        }
        RequireValidTopic(topic);
        RequireTopicAllowed(caller, topic);
        return await ChannelChangeAsync(async () =>
        {
            if (!await _store.CreateChannelAsync(topic, isPrivate, caller.Name, NowMs, cancellationToken))
            {
                throw new IdentityException(IdentityErrorKind.Conflict, "channel_exists", $"{topic} is already registered (or was deleted)");
            }
            await AuditAsync("channel.created", caller.Name, topic, null, isPrivate ? "private" : "public", cancellationToken);
            // A topic that becomes private may have subscribers already: the non-members leave now.
            await ChannelChangedAsync(topic, cancellationToken);
            return await GetChannelAsync(topic, cancellationToken);
        }, cancellationToken);
    }

    private static void RequireValidTopic(string topic)
    {
        if (!RoomChannel.IsValidTopic(topic) && !StateChannel.IsValidTopic(topic))
        {
            throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_topic", TaskBoardChannel.IsValidTopic(topic)
                ? "a task board is not registered itself: tasks:<name> follows room:<name> (register the room)"
                : "a channel is a room or a state namespace: room:<name> or state:<name>, 1-100 characters of A-Z a-z 0-9 . _ -");
        }
    }

    // A key restricted to some topics manages only channels within them.
    private static void RequireTopicAllowed(Caller caller, string topic)
    {
        if (!TopicPatterns.Matches(caller.TopicPattern, topic))
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", $"this credential is restricted to {caller.TopicPattern}");
        }
    }

    /// <summary>Public channels and the private ones the caller belongs to; everything for hub admins.</summary>
    public async Task<IReadOnlyList<ChannelRecord>> ListChannelsAsync(Caller caller, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var all = await _store.ListChannelsAsync(cancellationToken);
        return caller.IsAdmin
            ? all
            : [.. all.Where(c => c.DeletedAtMs is null && (!c.IsPrivate || c.Members.Any(m => m.UserName == caller.Name)))];
    }

    public Task SetChannelPrivateAsync(Caller caller, string topic, bool isPrivate, CancellationToken cancellationToken = default) =>
        ChannelChangeAsync(async () =>
        {
            await RequireChannelAdminAsync(caller, topic, cancellationToken);
            await _store.SetChannelPrivateAsync(topic, isPrivate, cancellationToken);
            await AuditAsync("channel.visibility", caller.Name, topic, null, isPrivate ? "private" : "public", cancellationToken);
            await ChannelChangedAsync(topic, cancellationToken);
        }, cancellationToken);

    /// <summary>Deletes a channel: its subscribers are removed and nobody joins it again (its history ages out by retention).</summary>
    public Task DeleteChannelAsync(Caller caller, string topic, CancellationToken cancellationToken = default) =>
        ChannelChangeAsync(async () =>
        {
            await RequireChannelAdminAsync(caller, topic, cancellationToken);
            await _store.DeleteChannelAsync(topic, NowMs, cancellationToken);
            await AuditAsync("channel.deleted", caller.Name, topic, null, null, cancellationToken);
            await ChannelChangedAsync(topic, cancellationToken);
        }, cancellationToken);

    /// <summary>
    /// Moves a channel's history (<see cref="Parley.Hub.History.IHistoryStore.RenameTopicAsync"/>); set at start-up
    /// by the host. Without it channels cannot be renamed.
    /// </summary>
    public Func<string, string, CancellationToken, ValueTask<bool>>? MoveTopicHistory { get; set; }

    /// <summary>
    /// Renames a channel: its history, access rules and members move to <paramref name="to"/>; live
    /// subscribers of the old name get <c>phx_close</c> and rejoin under the new one.
    /// </summary>
    public Task RenameChannelAsync(Caller caller, string from, string to, CancellationToken cancellationToken = default) =>
        ChannelChangeAsync(async () =>
        {
            await RequireChannelAdminAsync(caller, from, cancellationToken);
            if (!RoomChannel.IsValidTopic(from) || !RoomChannel.IsValidTopic(to))
            {
                throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_topic", "only rooms are renamed (room:<name> to room:<name>); a state namespace keeps its name");
            }
            RequireTopicAllowed(caller, to);
            if (_channels.ContainsKey(to))
            {
                throw new IdentityException(IdentityErrorKind.Conflict, "channel_exists", $"{to} is already registered (or was deleted)");
            }
            var move = MoveTopicHistory ?? throw new InvalidOperationException("MoveTopicHistory is not set: the host wires it to the history store");
            if (!await move(from, to, cancellationToken))
            {
                throw new IdentityException(IdentityErrorKind.Conflict, "channel_exists", $"{to} already has history; pick another name");
            }
            if (!await _store.RenameChannelAsync(from, to, cancellationToken))
            {
                // Cannot happen under the channel gate (the target was checked above); say so loudly if it does.
                throw new InvalidOperationException($"renaming the channel {from} to {to} failed after its history moved");
            }
            await AuditAsync("channel.renamed", caller.Name, from, null, "to=" + to, cancellationToken);
            await ReloadChannelAsync(from, cancellationToken);
            Raise(new CredentialChange(CredentialChangeKind.ChannelRenamed, null, null, Topic: from));
            // Subscribers already on the new name who are not allowed there leave too.
            await ChannelChangedAsync(to, cancellationToken);
        }, cancellationToken);

    public Task AddChannelMemberAsync(Caller caller, string topic, string userName, bool isAdmin, CancellationToken cancellationToken = default) =>
        ChannelChangeAsync(async () =>
        {
            await RequireChannelAdminAsync(caller, topic, cancellationToken);
            if (await _store.GetUserAsync(userName, cancellationToken) is null)
            {
                throw new IdentityException(IdentityErrorKind.NotFound, "user_not_found", $"no user '{userName}'");
            }
            await _store.SetChannelMemberAsync(topic, userName, isAdmin, NowMs, cancellationToken);
            await AuditAsync("channel.member_added", caller.Name, topic, null, $"user={userName}{(isAdmin ? " admin" : "")}", cancellationToken);
            await ReloadChannelAsync(topic, cancellationToken);
        }, cancellationToken);

    public Task RemoveChannelMemberAsync(Caller caller, string topic, string userName, CancellationToken cancellationToken = default) =>
        ChannelChangeAsync(async () =>
        {
            await RequireChannelAdminAsync(caller, topic, cancellationToken);
            if (!await _store.RemoveChannelMemberAsync(topic, userName, cancellationToken))
            {
                throw new IdentityException(IdentityErrorKind.NotFound, "member_not_found", $"{userName} is not a member of {topic}");
            }
            await AuditAsync("channel.member_removed", caller.Name, topic, null, "user=" + userName, cancellationToken);
            await ChannelChangedAsync(topic, cancellationToken);
        }, cancellationToken);

    /// <summary>
    /// A channel as <paramref name="caller"/> may see it: its registration (null for a topic nobody
    /// registered, which is public) and whether the member list is visible (members, channel admins and
    /// hub admins). A private channel the caller does not belong to is <c>forbidden</c>.
    /// </summary>
    public async Task<(ChannelRecord? Channel, bool MembersVisible)> DescribeChannelAsync(Caller caller, string topic, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (TaskBoardChannel.IsValidTopic(topic))
        {
            // A board is described by the room it follows (tasks:hub by nothing: it is open to everyone).
            RequireTopicAllowed(caller, topic);
            return topic == TaskBoardChannel.HubBoard ? (null, false) : await DescribeChannelAsync(caller, TaskBoardChannel.RoomOf(topic), cancellationToken);
        }
        RequireValidTopic(topic);
        RequireTopicAllowed(caller, topic);
        var channel = (await _store.ListChannelsAsync(cancellationToken)).FirstOrDefault(c => c.Topic == topic);
        if (channel is null)
        {
            return (null, false);
        }
        var member = caller.IsAdmin || channel.Members.Any(m => m.UserName == caller.Name);
        if (channel.IsPrivate && !member)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", $"{topic} is private: ask one of its admins to add you");
        }
        return (channel, member);
    }

    public async Task<ChannelRecord> GetChannelAsync(string topic, CancellationToken cancellationToken = default) =>
        (await _store.ListChannelsAsync(cancellationToken)).FirstOrDefault(c => c.Topic == topic)
        ?? throw new IdentityException(IdentityErrorKind.NotFound, "channel_not_found", $"{topic} is not a registered channel");

    private async Task ChannelChangedAsync(string topic, CancellationToken cancellationToken)
    {
        await ReloadChannelAsync(topic, cancellationToken);
        Raise(new CredentialChange(CredentialChangeKind.ChannelAccessChanged, null, null, Topic: topic));
    }

    // Channel admins and hub admins manage a channel; a deleted channel is managed by nobody.
    private async Task RequireChannelAdminAsync(Caller caller, string topic, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var channel = await GetChannelAsync(topic, cancellationToken);
        if (channel.DeletedAtMs is not null)
        {
            throw new IdentityException(IdentityErrorKind.Gone, "channel_deleted", $"{topic} was deleted");
        }
        RequireTopicAllowed(caller, topic);
        if (caller.Role < HubRole.Member)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "guests and read-only keys do not manage channels");
        }
        if (!caller.IsAdmin && !channel.Members.Any(m => m.UserName == caller.Name && m.IsAdmin))
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", $"only {topic}'s admins and hub admins manage it");
        }
    }
}
