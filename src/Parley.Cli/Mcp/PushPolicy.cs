using Parley.Cli.Commands;

namespace Parley.Cli.Mcp;

/// <summary>
/// Whose messages are pushed into the session (docs/agents.md §Push policy). Without <c>--allow-from</c>:
/// every sender, i.e. every member of the hub (only authenticated users can send). With it: only the users
/// named and the members of the @groups named (and of their sub-groups, as the hub expands them; re-read
/// at most once a minute). Everything else still waits in the inbox; the policy never drops anything.
/// </summary>
internal sealed class PushPolicy
{
    private static readonly TimeSpan GroupCacheFor = TimeSpan.FromMinutes(1);
    private readonly HashSet<string> _users = new(StringComparer.Ordinal);
    private readonly List<string> _groups = [];
    private readonly Func<string, CancellationToken, Task<IReadOnlyCollection<string>>> _membersOf;
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private HashSet<string> _groupMembers = new(StringComparer.Ordinal);
    private DateTimeOffset _groupsReadAt = DateTimeOffset.MinValue;

    /// <param name="allowFrom">Comma-separated users and @groups, or null/empty for everyone.</param>
    /// <param name="membersOf">Every user of a group (without the <c>@</c>) and of its sub-groups.</param>
    public PushPolicy(string? allowFrom, Func<string, CancellationToken, Task<IReadOnlyCollection<string>>> membersOf)
    {
        _membersOf = membersOf;
        foreach (var entry in (allowFrom ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (entry.StartsWith('@'))
            {
                if (entry.Length == 1)
                {
                    throw new IdentityCommands.UsageException("--allow-from: '@' needs a group name, e.g. @team/backend");
                }
                _groups.Add(entry[1..]);
            }
            else
            {
                _users.Add(entry);
            }
        }
    }

    /// <summary>True when no --allow-from was given.</summary>
    public bool AllowsEveryone => _users.Count == 0 && _groups.Count == 0;

    /// <summary>The policy as a person reads it: <c>everyone on the hub</c>, or the list.</summary>
    public string Describe() => AllowsEveryone ? "everyone on the hub" : string.Join(",", _users.Concat(_groups.Select(g => "@" + g)));

    /// <summary>Whether a message from <paramref name="sender"/> may be pushed. A group that cannot be read counts as empty (fail closed).</summary>
    public async Task<bool> AllowsAsync(string sender, CancellationToken cancellationToken)
    {
        if (AllowsEveryone || _users.Contains(sender))
        {
            return true;
        }
        if (_groups.Count == 0)
        {
            return false;
        }
        if (DateTimeOffset.UtcNow - _groupsReadAt > GroupCacheFor)
        {
            await _refresh.WaitAsync(cancellationToken);
            try
            {
                if (DateTimeOffset.UtcNow - _groupsReadAt > GroupCacheFor)
                {
                    var members = new HashSet<string>(StringComparer.Ordinal);
                    foreach (var group in _groups)
                    {
                        try
                        {
                            members.UnionWith(await _membersOf(group, cancellationToken));
                        }
                        catch (Exception ex) when (ex is IdentityCommands.CliFailure or HttpRequestException or IOException)
                        {
                            await Console.Error.WriteLineAsync($"parley mcp: cannot read @{group} for --allow-from ({ex.Message}); its members are not pushed");
                        }
                    }
                    _groupMembers = members;
                    _groupsReadAt = DateTimeOffset.UtcNow;
                }
            }
            finally
            {
                _refresh.Release();
            }
        }
        return _groupMembers.Contains(sender);
    }
}
