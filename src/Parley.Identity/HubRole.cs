namespace Parley.Identity;

/// <summary>What a user may do on the hub, weakest first (so roles compare with &lt; and &gt;).</summary>
public enum HubRole
{
    /// <summary>Read-only: joins public channels, never writes.</summary>
    Guest = 0,

    /// <summary>Joins and writes public channels and the private channels it belongs to.</summary>
    Member = 1,

    /// <summary>Administers the hub: users, keys, invites, channels.</summary>
    Admin = 2,

    /// <summary>The first registered user; an admin nobody can demote.</summary>
    Owner = 3,
}

/// <summary>The wire and storage names of <see cref="HubRole"/>.</summary>
public static class HubRoles
{
    public static string Name(HubRole role) => role switch
    {
        HubRole.Guest => "guest",
        HubRole.Member => "member",
        HubRole.Admin => "admin",
        HubRole.Owner => "owner",
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };

    public static bool TryParse(string? name, out HubRole role)
    {
        switch (name)
        {
            case "guest": role = HubRole.Guest; return true;
            case "member": role = HubRole.Member; return true;
            case "admin": role = HubRole.Admin; return true;
            case "owner": role = HubRole.Owner; return true;
            default: role = HubRole.Guest; return false;
        }
    }

    public static HubRole Parse(string name) =>
        TryParse(name, out var role) ? role : throw new FormatException($"unknown role '{name}' (guest, member, admin, owner)");

    /// <summary>The weaker of two roles.</summary>
    public static HubRole Min(HubRole a, HubRole b) => a < b ? a : b;
}

/// <summary>What an API key allows, capped by its owner's role.</summary>
public enum ApiKeyScope
{
    /// <summary>Join and read only (like a guest).</summary>
    Read = 0,

    /// <summary>Join, read and write (like a member).</summary>
    Write = 1,

    /// <summary>Everything the owner's role allows, including administration.</summary>
    Admin = 2,
}

public static class ApiKeyScopes
{
    public static string Name(ApiKeyScope scope) => scope switch
    {
        ApiKeyScope.Read => "read",
        ApiKeyScope.Write => "write",
        ApiKeyScope.Admin => "admin",
        _ => throw new ArgumentOutOfRangeException(nameof(scope)),
    };

    public static bool TryParse(string? name, out ApiKeyScope scope)
    {
        switch (name)
        {
            case "read": scope = ApiKeyScope.Read; return true;
            case "write": scope = ApiKeyScope.Write; return true;
            case "admin": scope = ApiKeyScope.Admin; return true;
            default: scope = ApiKeyScope.Read; return false;
        }
    }

    /// <summary>The strongest role a key of this scope can act with.</summary>
    public static HubRole Ceiling(ApiKeyScope scope) => scope switch
    {
        ApiKeyScope.Read => HubRole.Guest,
        ApiKeyScope.Write => HubRole.Member,
        _ => HubRole.Owner,
    };
}

/// <summary>Who may register without an invite.</summary>
public enum RegistrationPolicy
{
    /// <summary>Anyone who can reach the hub registers as a member.</summary>
    Open,

    /// <summary>Only with an invite code (the default). The very first user needs none and becomes owner.</summary>
    Invite,

    /// <summary>Nobody, except the very first user.</summary>
    Closed,
}
