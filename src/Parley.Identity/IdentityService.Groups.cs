using Parley.Hub.Groups;

namespace Parley.Identity;

/// <summary>A group as <c>GET /api/groups/{name}</c> shows it.</summary>
/// <param name="Group">The group and its direct members.</param>
/// <param name="Subgroups">The full names of the groups directly below it, sorted.</param>
/// <param name="Expanded">Every user it reaches: its members and those of every group below it, each once, sorted.</param>
public sealed record GroupDetails(GroupRecord Group, IReadOnlyList<string> Subgroups, IReadOnlyList<string> Expanded);

public sealed partial class IdentityService : IGroupDirectory
{
    // Every group, its members and the users it reaches, in memory: expanding a group for a message never
    // waits on the database. Rebuilt from the store after each change (groups are few and small); readers
    // take the current snapshot without a lock.
    private volatile GroupSnapshot _groups = GroupSnapshot.Empty;

    // One group change at a time, so the checks (parent exists, no subgroups, who leads) hold when the write lands.
    private readonly SemaphoreSlim _groupGate = new(1, 1);

    private sealed class GroupSnapshot
    {
        public static readonly GroupSnapshot Empty = new([]);

        public GroupSnapshot(IReadOnlyList<GroupRecord> groups)
        {
            All = groups;
            ByName = groups.ToDictionary(g => g.Name, StringComparer.Ordinal);
            var reach = groups.ToDictionary(g => g.Name, _ => new SortedSet<string>(StringComparer.Ordinal), StringComparer.Ordinal);
            foreach (var group in groups)
            {
                foreach (var member in group.Members)
                {
                    for (var name = group.Name; name is not null; name = GroupNames.Parent(name))
                    {
                        if (reach.TryGetValue(name, out var users))
                        {
                            users.Add(member.UserName);
                        }
                    }
                }
            }
            Expanded = reach.ToDictionary(r => r.Key, r => (IReadOnlyList<string>)[.. r.Value], StringComparer.Ordinal);
        }

        public IReadOnlyList<GroupRecord> All { get; }

        public Dictionary<string, GroupRecord> ByName { get; }

        public Dictionary<string, IReadOnlyList<string>> Expanded { get; }

        public GroupRecord Require(string name) => ByName.TryGetValue(name, out var group)
            ? group
            : throw new IdentityException(IdentityErrorKind.NotFound, "group_not_found", $"no group @{name}; `parley groups list` shows them");

        public IReadOnlyList<string> ChildrenOf(string name) => [.. All.Where(g => g.Parent == name).Select(g => g.Name)];

        public bool IsLeadWithin(string userName, string group)
        {
            for (var name = group; name is not null; name = GroupNames.Parent(name))
            {
                if (ByName.TryGetValue(name, out var g) && g.Members.Any(m => m.IsLead && m.UserName == userName))
                {
                    return true;
                }
            }
            return false;
        }
    }

    private async Task LoadGroupsAsync(CancellationToken cancellationToken) =>
        _groups = new GroupSnapshot(await _store.ListGroupsAsync(cancellationToken));

    private async Task<T> GroupChangeAsync<T>(Func<GroupSnapshot, Task<T>> change, CancellationToken cancellationToken)
    {
        await _groupGate.WaitAsync(cancellationToken);
        try
        {
            return await change(_groups);
        }
        finally
        {
            _groupGate.Release();
        }
    }

    /// <summary>Every group with its direct members, sorted by name. Anyone authenticated may list them.</summary>
    public Task<IReadOnlyList<GroupRecord>> ListGroupsAsync(Caller caller, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return Task.FromResult(_groups.All);
    }

    /// <summary>One group (name with or without <c>@</c>): its members with lead flags, its direct subgroups and every user it reaches. Anyone authenticated may look.</summary>
    public Task<GroupDetails> GetGroupAsync(Caller caller, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        name = ParseGroupName(name);
        var snapshot = _groups;
        return Task.FromResult(new GroupDetails(snapshot.Require(name), snapshot.ChildrenOf(name), snapshot.Expanded[name]));
    }

    /// <summary>
    /// The distinct user names of a group (with or without <c>@</c>) and of every group below it, sorted
    /// ordinally, each user once. Answered from memory. Banned users are included: whoever delivers decides.
    /// </summary>
    /// <exception cref="IdentityException"><c>invalid_group</c> for a malformed name, <c>group_not_found</c> for an unknown one.</exception>
    public Task<IReadOnlyList<string>> ExpandGroupAsync(string name, CancellationToken cancellationToken = default)
    {
        name = ParseGroupName(name);
        var snapshot = _groups;
        snapshot.Require(name);
        return Task.FromResult(snapshot.Expanded[name]);
    }

    ValueTask<IReadOnlyList<string>?> IGroupDirectory.TryExpandAsync(string group, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        return ValueTask.FromResult(_groups.Expanded.TryGetValue(GroupNames.Normalize(group), out var users) ? users : null);
    }

    /// <summary>
    /// Creates a group with no members. A top-level group needs a hub admin; a subgroup needs its parent to
    /// exist and a hub admin or a lead of the parent (or of any group above it).
    /// </summary>
    public Task<GroupRecord> CreateGroupAsync(Caller caller, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        name = ParseGroupName(name);
        return GroupChangeAsync(async groups =>
        {
            if (groups.ByName.ContainsKey(name))
            {
                throw new IdentityException(IdentityErrorKind.Conflict, "group_exists", $"@{name} already exists; pick another name");
            }
            var parent = GroupNames.Parent(name);
            if (parent is null)
            {
                if (!caller.IsAdmin)
                {
                    throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "only hub admins create top-level groups; a lead of an existing group may create groups below it");
                }
            }
            else
            {
                if (!groups.ByName.ContainsKey(parent))
                {
                    throw new IdentityException(IdentityErrorKind.NotFound, "group_not_found", $"@{parent} does not exist: create it before @{name}");
                }
                RequireGroupManager(caller, parent, groups);
            }
            if (!await _store.CreateGroupAsync(name, caller.Name, NowMs, cancellationToken))
            {
                throw new IdentityException(IdentityErrorKind.Conflict, "group_exists", $"@{name} already exists; pick another name");
            }
            await AuditAsync("group.created", caller.Name, name, null, null, cancellationToken);
            return (await ReloadGroupsAsync()).ByName[name];
        }, cancellationToken);
    }

    /// <summary>Deletes a group and its memberships (hub admins). A group with subgroups is refused (<c>group_has_subgroups</c>): delete those first.</summary>
    public Task DeleteGroupAsync(Caller caller, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        name = ParseGroupName(name);
        return GroupChangeAsync(async groups =>
        {
            var group = groups.Require(name);
            if (!caller.IsAdmin)
            {
                throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", $"only hub admins delete groups; ask one to delete @{name}");
            }
            if (groups.ChildrenOf(name) is { Count: > 0 } children)
            {
                throw new IdentityException(IdentityErrorKind.Conflict, "group_has_subgroups",
                    $"@{name} has subgroups ({string.Join(", ", children.Select(c => "@" + c))}): delete them first");
            }
            await _store.DeleteGroupAsync(name, cancellationToken);
            await AuditAsync("group.deleted", caller.Name, name, null, "members=" + group.Members.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), cancellationToken);
            await ReloadGroupsAsync();
            return true;
        }, cancellationToken);
    }

    /// <summary>Adds a user to a group, or changes their lead flag (hub admins, and leads of the group or of any group above it).</summary>
    public Task AddGroupMemberAsync(Caller caller, string group, string userName, bool isLead, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(userName);
        group = ParseGroupName(group);
        return GroupChangeAsync(async groups =>
        {
            groups.Require(group);
            RequireGroupManager(caller, group, groups);
            if (await _store.GetUserAsync(userName, cancellationToken) is null)
            {
                throw new IdentityException(IdentityErrorKind.NotFound, "user_not_found", $"no user '{userName}' (groups hold registered users, not API keys)");
            }
            await _store.SetGroupMemberAsync(group, userName, isLead, NowMs, cancellationToken);
            await AuditAsync("group.member_added", caller.Name, group, null, $"user={userName}{(isLead ? " lead" : "")}", cancellationToken);
            await ReloadGroupsAsync();
            return true;
        }, cancellationToken);
    }

    /// <summary>Removes a user from a group (hub admins, and leads of the group or of any group above it). Their memberships of subgroups stay.</summary>
    public Task RemoveGroupMemberAsync(Caller caller, string group, string userName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(userName);
        group = ParseGroupName(group);
        return GroupChangeAsync(async groups =>
        {
            groups.Require(group);
            RequireGroupManager(caller, group, groups);
            if (!await _store.RemoveGroupMemberAsync(group, userName, cancellationToken))
            {
                throw new IdentityException(IdentityErrorKind.NotFound, "member_not_found", $"{userName} is not a member of @{group}");
            }
            await AuditAsync("group.member_removed", caller.Name, group, null, "user=" + userName, cancellationToken);
            await ReloadGroupsAsync();
            return true;
        }, cancellationToken);
    }

    // The store has the change: the snapshot follows even if the request was abandoned meanwhile.
    private async Task<GroupSnapshot> ReloadGroupsAsync()
    {
        var snapshot = new GroupSnapshot(await _store.ListGroupsAsync(CancellationToken.None));
        _groups = snapshot;
        return snapshot;
    }

    private static string ParseGroupName(string name)
    {
        var normalized = GroupNames.Normalize(name ?? "");
        return GroupNames.IsValid(normalized)
            ? normalized
            : throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_group", $"a group name is {GroupNames.Rule}");
    }

    // Hub admins manage every group. Otherwise a lead of the group or of any group above it, acting with a
    // login (an API key is not a login; admin-scoped keys are the admins' own) and at least a member's role.
    private static void RequireGroupManager(Caller caller, string group, GroupSnapshot groups)
    {
        if (caller.IsAdmin)
        {
            return;
        }
        if (caller.ApiKeyId is not null)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "an API key manages groups only with admin scope (held by admins); log in instead");
        }
        if (caller.Role < HubRole.Member)
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", "guests do not manage groups");
        }
        if (caller.UserName is null || !groups.IsLeadWithin(caller.UserName, group))
        {
            throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", $"only hub admins and leads of @{group} or of a group above it manage it");
        }
    }
}
