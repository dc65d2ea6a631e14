using Parley.Hub;
using Parley.Protocol;

namespace Parley.Identity;

/// <summary>
/// Makes access changes take effect on live sockets at once: a revoked key or a banned user is
/// disconnected with 4403 (stop), a kick with 4409, revoked credentials with 4403; a role change
/// updates sockets that logged in with a token in place, and closes API-key sockets with 4401 so they
/// reconnect under the new role (a key's scope may cap it).
/// </summary>
public static class LiveAccess
{
    /// <summary>Subscribes <paramref name="hub"/> to <paramref name="identity"/>'s changes.</summary>
    public static void Follow(IdentityService identity, ParleyHub hub)
    {
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(hub);
        identity.CredentialsChanged += change => Apply(hub, change, identity);
    }

    /// <summary>Applies one change; returns the number of sockets closed, updated or unsubscribed.</summary>
    public static int Apply(ParleyHub hub, CredentialChange change, IdentityService? identity = null)
    {
        ArgumentNullException.ThrowIfNull(hub);
        ArgumentNullException.ThrowIfNull(change);
        var user = change.UserName;
        switch (change.Kind)
        {
            case CredentialChangeKind.KeyRevoked:
                return hub.CloseWhere(p => p.CredentialId == change.ApiKeyId, CloseStatus.Forbidden, "API key revoked");
            case CredentialChangeKind.UserBanned:
                return hub.CloseWhere(p => p.Name == user, CloseStatus.Forbidden, "banned");
            case CredentialChangeKind.UserCredentialsRevoked:
                return hub.CloseWhere(p => p.Name == user, CloseStatus.Forbidden, "credentials revoked: log in again");
            case CredentialChangeKind.UserKicked:
                return hub.CloseWhere(p => p.Name == user, CloseStatus.Kicked, "kicked by an admin");
            case CredentialChangeKind.RoleChanged when change.Role is { } role:
                var closed = hub.CloseWhere(p => p.Name == user && p.CredentialId is not null, CloseStatus.TokenExpired, "role changed: reconnect");
                var updated = hub.UpdatePrincipals(p => p.Name == user && p.CredentialId is null
                    ? p with { Roles = [HubRoles.Name(role)], CanWrite = role >= HubRole.Member }
                    : null);
                // A demoted admin may have been in private channels only admins could enter.
                if (identity is not null)
                {
                    foreach (var topic in identity.RegisteredChannels)
                    {
                        Apply(hub, change with { Kind = CredentialChangeKind.ChannelAccessChanged, Topic = topic }, identity);
                    }
                }
                return closed + updated;
            case CredentialChangeKind.ChannelAccessChanged when change.Topic is { } topic && identity is not null:
                // Subscribers who may no longer be there get phx_close, like a server-side leave; a room's
                // task board follows the room (see IdentityService.JoinDecision).
                var removed = 0;
                string[] topics = topic.StartsWith("room:", StringComparison.Ordinal) ? [topic, Parley.Hub.Tasks.TaskBoardChannel.BoardOf(topic)] : [topic];
                foreach (var connection in hub.Connections)
                {
                    var principal = connection.Principal;
                    foreach (var affected in topics)
                    {
                        if (identity.JoinDecision(principal.Name, IdentityAuthenticator.RoleOf(principal), affected) == ChannelAccess.Forbidden
                            && connection.RemoveSubscription(affected, sendClose: true))
                        {
                            removed++;
                        }
                    }
                }
                return removed;
            case CredentialChangeKind.ChannelRenamed when change.Topic is { } oldTopic:
                // The room's board moved with it (see ParleyServerHost): its old name's subscribers leave too.
                return hub.Connections.Count(connection => connection.RemoveSubscription(oldTopic, sendClose: true))
                    + (oldTopic.StartsWith("room:", StringComparison.Ordinal)
                        ? hub.Connections.Count(connection => connection.RemoveSubscription(Parley.Hub.Tasks.TaskBoardChannel.BoardOf(oldTopic), sendClose: true))
                        : 0);
            default:
                return 0;
        }
    }
}
