namespace Parley.Identity;

/// <summary>
/// A named group of users, written <c>@name</c> by people and stored without the <c>@</c>. Groups nest by
/// path: <c>team/backend</c> is inside <c>team</c>.
/// </summary>
/// <param name="Name">The full path, e.g. <c>team/backend</c> (no <c>@</c>).</param>
/// <param name="CreatedBy">The principal that created it (a user, or <c>key:…</c> for a hub key).</param>
/// <param name="CreatedAtMs">Unix milliseconds.</param>
/// <param name="Members">Its direct members (not those of its subgroups), by user name.</param>
public sealed record GroupRecord(string Name, string CreatedBy, long CreatedAtMs, IReadOnlyList<GroupMember> Members)
{
    /// <summary>The enclosing group's name; null for a top-level group.</summary>
    public string? Parent => GroupNames.Parent(Name);
}

/// <summary>A user's membership of a group; a lead manages the group's members and its subgroups.</summary>
public sealed record GroupMember(string UserName, bool IsLead);

/// <summary>Rules for group names: 1 to 4 segments separated by <c>/</c>, each 1-32 of <c>a-z 0-9 _ -</c>.</summary>
public static class GroupNames
{
    public const int MaxSegments = 4;
    public const int MaxSegmentLength = 32;

    /// <summary>The rule, for error messages.</summary>
    public const string Rule = "1 to 4 segments separated by '/', each 1 to 32 characters from a-z, 0-9, '_' and '-' (e.g. @team/backend)";

    /// <summary>The name without one leading <c>@</c> (people write <c>@reviewers</c>; the store keeps <c>reviewers</c>).</summary>
    public static string Normalize(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.StartsWith('@') ? name[1..] : name;
    }

    /// <summary>Whether <paramref name="name"/> (already without <c>@</c>) follows <see cref="Rule"/>.</summary>
    public static bool IsValid(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return false;
        }
        var segments = 1;
        var length = 0;
        foreach (var c in name)
        {
            if (c == '/')
            {
                if (length == 0 || ++segments > MaxSegments)
                {
                    return false;
                }
                length = 0;
            }
            else if (c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-')
            {
                if (++length > MaxSegmentLength)
                {
                    return false;
                }
            }
            else
            {
                return false;
            }
        }
        return length > 0;
    }

    /// <summary>The enclosing group of a valid name; null for a top-level one.</summary>
    public static string? Parent(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var slash = name.LastIndexOf('/');
        return slash < 0 ? null : name[..slash];
    }

    /// <summary>Whether <paramref name="name"/> is <paramref name="ancestor"/> itself or a group below it.</summary>
    public static bool IsWithin(string name, string ancestor)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(ancestor);
        return name.Length == ancestor.Length
            ? string.Equals(name, ancestor, StringComparison.Ordinal)
            : name.Length > ancestor.Length && name[ancestor.Length] == '/' && name.StartsWith(ancestor, StringComparison.Ordinal);
    }
}
