using Parley.Hub.Groups;
using Parley.Hub.Inbox;

namespace Parley.Identity;

/// <summary>Resolves direct-message addresses against the hub's users and groups (<c>@team</c> reaches <c>@team/backend</c> too).</summary>
public sealed class IdentityRecipientDirectory(IdentityService identity) : IRecipientDirectory
{
    public async ValueTask<(IReadOnlyList<string>? Users, string? Reason)> ResolveAsync(string address, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.StartsWith('@'))
        {
            if (await ((IGroupDirectory)identity).TryExpandAsync(address, cancellationToken) is not { } members)
            {
                return (null, $"{address} is not a group of this hub (see parley groups list)");
            }
            var active = new List<string>(members.Count);
            foreach (var member in members)
            {
                if (await identity.IsActiveUserAsync(member, cancellationToken))
                {
                    active.Add(member); // a banned member's inbox would only fill up
                }
            }
            return (active, null);
        }
        return await identity.IsActiveUserAsync(address, cancellationToken)
            ? ([address], null)
            : (null, $"{address} is not a user of this hub (see parley admin users)");
    }
}
