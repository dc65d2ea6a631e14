namespace Parley.Hub.Groups;

/// <summary>
/// Resolves a group address (<c>@team</c>, <c>@team/backend</c>) to the users it reaches, for features
/// of the hub core that address people by group. Parley.Identity implements it from memory.
/// </summary>
public interface IGroupDirectory
{
    /// <summary>
    /// The distinct user names of the group and of every group below it (<c>@team</c> reaches
    /// <c>@team/backend</c>), sorted ordinally; each user once however many of those groups they are in.
    /// The name may carry a leading <c>@</c>. An existing group with no members anywhere below it yields
    /// an empty list.
    /// </summary>
    /// <returns>null when there is no such group (or the name is not a valid group name).</returns>
    ValueTask<IReadOnlyList<string>?> TryExpandAsync(string group, CancellationToken cancellationToken = default);
}
