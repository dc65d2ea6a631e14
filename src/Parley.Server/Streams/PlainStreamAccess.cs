using Parley.Identity;
using Parley.Protocol;

namespace Parley.Server.Streams;

/// <summary>
/// Access changes reach live plain streams at once, as they reach Phoenix sockets (<see cref="LiveAccess"/>):
/// a revoked key, a ban, revoked credentials or a kick end the stream with 4403; a role change with 4401
/// (reconnect: what the watcher may see depends on the role).
/// </summary>
internal static class PlainStreamAccess
{
    public static void Follow(IdentityService identity, PlainStreamRegistry registry) =>
        identity.CredentialsChanged += change => Apply(registry, change);

    private static int Apply(PlainStreamRegistry registry, CredentialChange change) => change.Kind switch
    {
        CredentialChangeKind.KeyRevoked => registry.FailWhere(p => p.CredentialId == change.ApiKeyId, 403, StreamErrorCodes.Forbidden, "API key revoked"),
        CredentialChangeKind.UserBanned => registry.FailWhere(p => p.Name == change.UserName, 403, StreamErrorCodes.Forbidden, "banned"),
        CredentialChangeKind.UserCredentialsRevoked => registry.FailWhere(p => p.Name == change.UserName, 403, StreamErrorCodes.Forbidden, "credentials revoked: log in again"),
        CredentialChangeKind.UserKicked => registry.FailWhere(p => p.Name == change.UserName, 403, StreamErrorCodes.Forbidden, "kicked by an admin"),
        CredentialChangeKind.RoleChanged => registry.FailWhere(p => p.Name == change.UserName, 401, "role_changed", "role changed: reconnect"),
        _ => 0,
    };
}
