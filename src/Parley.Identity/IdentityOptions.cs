namespace Parley.Identity;

/// <summary>Identity settings (config section <c>identity</c>). Defaults are what a public hub should run with.</summary>
public sealed class IdentityOptions
{
    /// <summary>Who may register without an invite. Default <see cref="RegistrationPolicy.Invite"/>.</summary>
    public RegistrationPolicy Registration { get; set; } = RegistrationPolicy.Invite;

    /// <summary>Lifetime of an access token (JWT). Default 15 minutes.</summary>
    public TimeSpan AccessTokenLifetime { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Lifetime of a refresh token; every use rotates it. Default 30 days.</summary>
    public TimeSpan RefreshTokenLifetime { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How long a login challenge (nonce) stays usable. Default 60 seconds.</summary>
    public TimeSpan ChallengeLifetime { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How far a signed login timestamp may be from the hub's clock, either way. Default 60 seconds.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Login attempts (challenges and logins) one user name may make in a burst; then one per <see cref="LoginRefillInterval"/>. Default 10.</summary>
    public int LoginBurstPerUser { get; set; } = 10;

    /// <summary>Login attempts one address may make in a burst. Default 30.</summary>
    public int LoginBurstPerAddress { get; set; } = 30;

    /// <summary>How often one more attempt is allowed after a burst. Default 6 seconds.</summary>
    public TimeSpan LoginRefillInterval { get; set; } = TimeSpan.FromSeconds(6);

    /// <summary>Default lifetime of an invite. Default 7 days.</summary>
    public TimeSpan InviteLifetime { get; set; } = TimeSpan.FromDays(7);
}
