using System.Text.Json;
using Parley.Hub.Auth;

namespace Parley.Identity;

/// <summary>
/// The hub's socket gatekeeper: the credential on the upgrade (query <c>token</c> or the Phoenix bearer
/// subprotocol) must be a valid access token or API key. Refusals say what to do but never which part
/// was wrong (no "no such user" vs "wrong key").
/// </summary>
public sealed class IdentityAuthenticator(IdentityService identity) : IConnectAuthenticator, IJoinAuthorizer
{
    public async ValueTask<ConnectResult> AuthenticateAsync(ConnectRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var (caller, error) = await identity.AuthenticateAsync(request.Token, cancellationToken);
        if (caller is null)
        {
            return error switch
            {
                "missing" => ConnectResult.Unauthorized("a credential is required: pass an access token or API key as the token parameter"),
                "expired" => ConnectResult.Unauthorized("token expired: refresh it and connect again"),
                "revoked" => ConnectResult.Reject("this key was revoked: do not retry with it"),
                "banned" => ConnectResult.Reject("this user is banned: do not retry"),
                _ => ConnectResult.Unauthorized("invalid credential: log in again or use a valid API key"),
            };
        }
        return ConnectResult.Accept(ToPrincipal(caller));
    }

    /// <summary>
    /// API keys restricted to a topic pattern may only join matching topics; a private channel admits its
    /// members and hub admins; a deleted channel nobody.
    /// </summary>
    public ValueTask<string?> AuthorizeJoinAsync(ConnectionPrincipal principal, string topic, JsonElement joinParams, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(principal);
        var allowed = TopicPatterns.Matches(principal.TopicPattern, topic)
            && identity.JoinDecision(principal.Name, RoleOf(principal), topic) == ChannelAccess.Allowed;
        return ValueTask.FromResult(allowed ? null : "forbidden");
    }

    /// <summary>The role a principal carries (guest when it has none).</summary>
    public static HubRole RoleOf(ConnectionPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        return principal.Roles.Count > 0 && HubRoles.TryParse(principal.Roles[0], out var role) ? role : HubRole.Guest;
    }

    /// <summary>The hub's view of a caller.</summary>
    public static ConnectionPrincipal ToPrincipal(Caller caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return new ConnectionPrincipal(caller.Name, true, [HubRoles.Name(caller.Role)])
        {
            CanWrite = caller.Role >= HubRole.Member,
            ExpiresAtMs = caller.ExpiresAtMs,
            CredentialId = caller.ApiKeyId,
            TopicPattern = caller.TopicPattern,
        };
    }
}
