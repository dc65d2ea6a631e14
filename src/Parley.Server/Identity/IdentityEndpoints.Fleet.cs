using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Parley.Hub.Fleet;
using Parley.Identity;

namespace Parley.Server.Identity;

// ASP0016 misreads the inner handler lambdas as request delegates (as in IdentityEndpoints.cs).
#pragma warning disable ASP0016
internal static partial class IdentityEndpoints
{
    private static readonly string[] FleetActions = ["start", "stop", "restart", "archive", "unarchive"];

    /// <summary>
    /// The fleet HTTP API (docs/protocol.md §15, docs/fleet.md): any authenticated caller reads, admins run
    /// lifecycle operations. Errors: 400 <c>invalid_instance</c>, 403 <c>forbidden</c>, 404 <c>instance_not_found</c>,
    /// 409 <c>instance_exists</c> / <c>instance_running</c> / <c>instance_archived</c>.
    /// </summary>
    public static void MapFleet(IEndpointRouteBuilder app, IdentityService identity, FleetService fleet)
    {
        app.MapGet("/api/instances", context => HandleAuthenticatedAsync(context, identity, readBody: false, (_, _) => Fleet(async () =>
        {
            var include = context.Request.Query["include_archived"].ToString() is "true" or "1";
            var list = await fleet.ListAsync(include, context.RequestAborted);
            return (StatusCodes.Status200OK, w =>
            {
                w.WriteStartArray("instances");
                foreach (var view in list)
                {
                    FleetJson.WriteInstance(w, view);
                }
                w.WriteEndArray();
                w.WriteBoolean("include_archived", include);
            });
        })));

        app.MapGet("/api/instances/{name}", context => HandleAuthenticatedAsync(context, identity, readBody: false, (_, _) => Fleet(async () =>
            Instance(StatusCodes.Status200OK, await fleet.GetAsync(InstanceParameter(context), context.RequestAborted)))));

        // The REST mirror of a log tail: the newest ?tail=N lines (default 100, at most 1000).
        app.MapGet("/api/instances/{name}/logs", context => HandleAuthenticatedAsync(context, identity, readBody: false, (_, _) => Fleet(async () =>
        {
            var tail = LogsChannel.DefaultBacklog;
            if (context.Request.Query.TryGetValue("tail", out var given)
                && (!int.TryParse(given.ToString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out tail) || tail > LogFeed.MaxBacklog))
            {
                throw new FleetException(FleetErrors.InvalidInstance, $"tail must be a whole number from 0 to {LogFeed.MaxBacklog}");
            }
            var name = InstanceParameter(context);
            var lines = (await fleet.LogFeedAsync(name, context.RequestAborted)).Tail(tail);
            return (StatusCodes.Status200OK, w =>
            {
                w.WriteString("name", name);
                w.WriteStartArray("lines");
                foreach (var line in lines)
                {
                    w.WriteStringValue(line.Text);
                }
                w.WriteEndArray();
                w.WriteNumber("count", lines.Count);
            });
        })));

        app.MapPost("/api/instances", context => HandleAuthenticatedAsync(context, identity, readBody: true, (caller, body) => Fleet(async () =>
        {
            var actor = Actor(caller);
            if (!actor.IsAdmin)
            {
                throw new FleetException(FleetErrors.Forbidden, "only hub admins create instances (they run commands as the hub's user)");
            }
            var (name, spec, start) = FleetJson.ReadCreate(body);
            return Instance(StatusCodes.Status201Created, await fleet.CreateAsync(actor, name, spec, start, context.RequestAborted));
        })));

        app.MapPost("/api/instances/{name}/clone", context => HandleAuthenticatedAsync(context, identity, readBody: true, (caller, body) => Fleet(async () =>
            Instance(StatusCodes.Status201Created, await fleet.CloneAsync(Actor(caller), InstanceParameter(context), FleetJson.ReadName(body, "name"), context.RequestAborted)))));

        app.MapPost("/api/instances/{name}/{action}", context => HandleAuthenticatedAsync(context, identity, readBody: false, (caller, _) => Fleet(async () =>
        {
            var action = (string)context.Request.RouteValues["action"]!;
            Func<FleetActor, string, CancellationToken, Task<InstanceView>> operation = action switch
            {
                "start" => fleet.StartInstanceAsync,
                "stop" => fleet.StopInstanceAsync,
                "restart" => fleet.RestartInstanceAsync,
                "archive" => fleet.ArchiveAsync,
                "unarchive" => fleet.UnarchiveAsync,
                _ => throw new IdentityException(IdentityErrorKind.NotFound, "not_found", $"instances take {string.Join(", ", FleetActions)} and clone, not '{action}'"),
            };
            // The operation finishes even when the caller goes away: a half-done stop helps nobody.
            return Instance(StatusCodes.Status200OK, await operation(Actor(caller), InstanceParameter(context), CancellationToken.None));
        })));

        app.MapDelete("/api/instances/{name}", context => HandleAuthenticatedAsync(context, identity, readBody: false, (caller, _) => Fleet(async () =>
        {
            var deleted = await fleet.DeleteAsync(Actor(caller), InstanceParameter(context), CancellationToken.None);
            return (StatusCodes.Status200OK, w =>
            {
                w.WriteString("name", deleted.Name);
                w.WriteBoolean("deleted", true);
            });
        })));
    }

    private static FleetActor Actor(Caller caller) => new(caller.Name, caller.IsAdmin);

    private static string InstanceParameter(HttpContext context) => (string)context.Request.RouteValues["name"]!;

    private static (int Status, Action<Utf8JsonWriter> Write) Instance(int status, InstanceView view) => (status, w => FleetJson.WriteInstanceFields(w, view));

    // Fleet refusals become the API's {error, message} replies with the matching status.
    private static async Task<(int Status, Action<Utf8JsonWriter> Write)> Fleet(Func<Task<(int Status, Action<Utf8JsonWriter> Write)>> run)
    {
        try
        {
            return await run();
        }
        catch (FleetException ex)
        {
            var kind = ex.Code switch
            {
                FleetErrors.Forbidden => IdentityErrorKind.Forbidden,
                FleetErrors.NotFound => IdentityErrorKind.NotFound,
                FleetErrors.Exists or FleetErrors.Running or FleetErrors.Archived => IdentityErrorKind.Conflict,
                _ => IdentityErrorKind.BadRequest,
            };
            throw new IdentityException(kind, ex.Code, ex.Message);
        }
    }
}
