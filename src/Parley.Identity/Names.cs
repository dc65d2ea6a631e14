namespace Parley.Identity;

/// <summary>Rules for user and key names: <c>[a-z0-9_-]{2,32}</c>.</summary>
public static class Names
{
    public const int MinLength = 2;
    public const int MaxLength = 32;

    /// <summary>The rule, for error messages.</summary>
    public const string Rule = "2 to 32 characters from a-z, 0-9, '_' and '-'";

    public static bool IsValid(string? name)
    {
        if (name is null || name.Length is < MinLength or > MaxLength)
        {
            return false;
        }
        foreach (var c in name)
        {
            if (!(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-'))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The principal name of an API key that belongs to no user (such as the initial owner key). The colon keeps it apart from every user name.</summary>
    public static string ForUserlessKey(string keyName) => "key:" + keyName;
}
