namespace Parley.Hub.Fleet;

/// <summary>Why a fleet operation was refused: a reason code (<see cref="FleetErrors"/>) and a message a person can act on.</summary>
public sealed class FleetException(string code, string message) : Exception(message)
{
    /// <summary>The reason code, e.g. <c>instance_not_found</c>.</summary>
    public string Code { get; } = code;
}

/// <summary>The reason codes of refused fleet operations (docs/protocol.md §15): HTTP statuses in brackets.</summary>
public static class FleetErrors
{
    /// <summary>A field of the request is invalid (400); the message names the field.</summary>
    public const string InvalidInstance = "invalid_instance";

    /// <summary>No instance has that name (404).</summary>
    public const string NotFound = "instance_not_found";

    /// <summary>The name is taken (409).</summary>
    public const string Exists = "instance_exists";

    /// <summary>The instance is running (or about to restart): stop it first (409).</summary>
    public const string Running = "instance_running";

    /// <summary>The instance is archived: unarchive it first (409).</summary>
    public const string Archived = "instance_archived";

    /// <summary>Only hub admins run lifecycle operations (403).</summary>
    public const string Forbidden = "forbidden";
}
