namespace Parley.Protocol;

/// <summary>
/// Close codes and error frames of the plain JSON WebSocket streams (<c>/ws/…</c>, docs/protocol.md §16).
/// An error is an <c>{"type":"error","code":…,"message":…}</c> frame followed by a close with
/// 4000 + the HTTP status that means the same (4400 bad params, 4404 unknown thing, 4500 internal, …).
/// The generic codes (1000, 1001, 1008) are the ones in <see cref="CloseStatus"/>.
/// </summary>
public static class StreamCloseStatus
{
    /// <summary>Base of the error close codes: 4000 + HTTP status.</summary>
    public const ushort HttpBase = 4000;

    /// <summary>Bad query parameters (4000 + 400).</summary>
    public const ushort BadRequest = 4400;

    /// <summary>The credential stopped being valid (4000 + 401).</summary>
    public const ushort Unauthorized = 4401;

    /// <summary>The principal may not watch this (4000 + 403).</summary>
    public const ushort Forbidden = 4403;

    /// <summary>The thing to watch does not exist (4000 + 404).</summary>
    public const ushort NotFound = 4404;

    /// <summary>The hub failed internally (4000 + 500).</summary>
    public const ushort InternalError = 4500;

    /// <summary>The close code for an error with HTTP status <paramref name="httpStatus"/> (400-599).</summary>
    public static ushort ForHttpStatus(int httpStatus)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(httpStatus, 400);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(httpStatus, 599);
        return (ushort)(HttpBase + httpStatus);
    }
}

/// <summary>The <c>code</c> strings of plain-stream <c>error</c> frames.</summary>
public static class StreamErrorCodes
{
    /// <summary>A query parameter is missing, malformed or out of range (4400).</summary>
    public const string BadParams = "bad_params";

    /// <summary>The principal may not open this stream (4403).</summary>
    public const string Forbidden = "forbidden";

    /// <summary>The thing named in the path or parameters does not exist (4404).</summary>
    public const string NotFound = "not_found";

    /// <summary>The hub failed to open or run the stream (4500).</summary>
    public const string InternalError = "internal_error";
}
