namespace Parley.Identity;

/// <summary>
/// An authenticated party: a user with an access token, or an API key (a user's, or the hub's own
/// such as the initial owner key).
/// </summary>
/// <param name="Name">The name shown as <c>from</c>: the user name, or <c>key:&lt;name&gt;</c> for a key that belongs to no user.</param>
/// <param name="Role">The effective role: the user's role, capped by an API key's scope.</param>
/// <param name="UserName">The user behind it; null for a hub key.</param>
/// <param name="ApiKeyId">The API key used, if any.</param>
/// <param name="TopicPattern">An API key's topic restriction (<c>room:ci-*</c>), if any.</param>
/// <param name="ExpiresAtMs">When the credential stops being valid (access token or key expiry), if it does.</param>
public sealed record Caller(string Name, HubRole Role, string? UserName, string? ApiKeyId, string? TopicPattern, long? ExpiresAtMs)
{
    public bool IsAdmin => Role >= HubRole.Admin;
}
