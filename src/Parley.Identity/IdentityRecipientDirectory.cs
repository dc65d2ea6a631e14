using Parley.Hub.Inbox;

namespace Parley.Identity;

/// <summary>Resolves direct-message addresses against the users the hub knows (groups: <c>@name</c>).</summary>
public sealed class IdentityRecipientDirectory(IdentityService identity) : IRecipientDirectory
{
    public async ValueTask<(IReadOnlyList<string>? Users, string? Reason)> ResolveAsync(string address, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.StartsWith('@'))
        {
            return (null, $"{address}: groups are not available on this hub yet");
        }
        return await identity.IsActiveUserAsync(address, cancellationToken)
            ? ([address], null)
            : (null, $"{address} is not a user of this hub (see parley admin users)");
    }
}
